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
    display = None if quiet or not entry.url else _DownloadDisplay(entry.name, catalogue.address(entry.url))
    try:
        path = catalogue.get_corpus(name, progress=display)
    finally:
        if display is not None:
            display.close()
    sys.stdout.write(f"{path}\n")


class _DownloadDisplay:
    """The progress callback of a download: a line saying what is fetched, once the download starts,
    and a progress bar when stderr is a terminal. Nothing at all when the corpus is already here."""

    def __init__(self, name, url):
        self.name, self.url, self.bar = name, url, None
        self.size = None  # the catalogue's, given by the first call: for servers that do not say

    def __call__(self, received, total):
        if self.size is None:
            self.size = total
            sys.stderr.write(f"downloading {self.name} ({total:,} bytes) from {self.url}\n")
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress(TextColumn(self.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                    console=console, transient=True)  # fmt: skip
                self.task = self.bar.add_task("get", total=total)
                self.bar.start()
        if self.bar is not None:
            self.bar.update(self.task, completed=received, total=total or self.size)

    def close(self):
        if self.bar is not None:
            self.bar.stop()
