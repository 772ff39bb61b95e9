"""`charrnn corpus list` and `charrnn corpus get NAME`: the face of charrnn.catalogue."""

import sys
from typing import Annotated

import typer

from charrnn import cli_text

corpus_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Corpora on demand: list the catalogue, or fetch one into the user cache and print its path.",
    epilog=cli_text.CORPUS,
)


@corpus_app.command("list", epilog=cli_text.CORPUS_LIST)
def list_corpora(json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False):
    """Show the catalogue: each corpus's name, size, whether it is here already, licence, source and SHA-256."""
    from charrnn import catalogue, report

    rows = [
        dict(entry.as_dict(), here=catalogue.is_ready(entry), path=str(catalogue.cached_path(entry)))
        for entry in catalogue.entries()
    ]
    if json:
        sys.stdout.write(report.to_json(rows) + "\n")
        return
    for row in rows:  # a block per corpus: addresses and digests are too long for table cells
        flags = ["here" if row["here"] else "not downloaded yet"] + (["train with --lines"] if row["lines"] else [])
        sys.stdout.write(f"{row['name']}  {row['size']:,} bytes, {', '.join(flags)}\n    {row['title']}\n")
        for key in ("licence", "source", "sha256"):
            sys.stdout.write(f"    {key:<8} {row[key]}\n")


@corpus_app.command("get", epilog=cli_text.CORPUS_GET)
def get_corpus(
    name: Annotated[str, typer.Argument(help="A name from `charrnn corpus list`.", show_default=False)],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
):
    """Print the path of a corpus, downloading it (verified by its SHA-256) when it is not cached yet.
    $CHARRNN_CORPUS_MIRROR replaces the host of the address; $CHARRNN_CACHE_DIR moves the cache."""
    from charrnn import catalogue

    entry = catalogue.find(name)
    if entry.url and not catalogue.is_ready(entry) and not quiet:
        with _download_display(entry, catalogue.address(entry.url)) as progress:
            path = catalogue.get_corpus(name, progress=progress)
    else:
        path = catalogue.get_corpus(name)
    sys.stdout.write(f"{path}\n")


class _download_display:
    """A progress bar on a terminal; one line saying what is fetched otherwise."""

    def __init__(self, entry, url):
        self.entry, self.url, self.bar = entry, url, None

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        sys.stderr.write(f"downloading {self.entry.name} ({self.entry.size:,} bytes) from {self.url}\n")
        console = Console(stderr=True)
        if console.is_terminal:
            self.bar = Progress(TextColumn(self.entry.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                console=console, transient=True)  # fmt: skip
            self.task = self.bar.add_task("get", total=self.entry.size)
            self.bar.start()
        return self.update

    def update(self, received, total):
        if self.bar is not None:
            self.bar.update(self.task, completed=received, total=total or self.entry.size)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
