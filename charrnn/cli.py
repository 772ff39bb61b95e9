"""The `charrnn` command: parse flags, call the library, turn its errors into one line and an exit code.

Heavy modules (numpy, numba, rich) are imported inside the commands, so `charrnn --help` is instant.
"""

import gc
import inspect
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from charrnn import cli_text
from charrnn.cli_corpus import corpus_app
from charrnn.cli_errors import OneLineErrors, error_line, quiet_broken_pipe
from charrnn.config import SETTINGS  # light: the training settings' declarations, no numpy
from charrnn.errors import CharrnnWarning

app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Train character-level RNN language models on any text, and generate text from them.",
    epilog=cli_text.MAIN,
)
app.add_typer(corpus_app, name="corpus")


def _version(value: bool):
    if value:
        from charrnn import __version__

        sys.stdout.write(f"charrnn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
):  # fmt: skip
    pass

Corpus = Annotated[list[str], typer.Argument(help="Text file(s); - reads standard input.", show_default=False)]
SETTING_HELP = {s.name: s.help for s in SETTINGS}  # for the options other commands share with train
ENCODING_HELP = "Invalid UTF-8: strict (refuse), replace or ignore."
EncodingErrors = Annotated[str, typer.Option("--encoding-errors", help=ENCODING_HELP)]
ModelPath = Annotated[Optional[Path], typer.Option("--model", "-m", show_default=False, help=(
    "Checkpoint to use.  [default: charrnn.best.npz when it is the best state of the run in charrnn.npz, "
    "else charrnn.npz]"))]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Device = Annotated[str, typer.Option(
    "--device", envvar="CHARRNN_DEVICE", show_envvar=False, show_default=False,
    help="auto (a CUDA GPU when one is usable, else the CPU), cpu or cuda; see `charrnn info --devices`.  "
         "[default: $CHARRNN_DEVICE, else auto]")]  # fmt: skip


def resolve(device):
    """The --device value as "cpu" or "cuda" (a one-line UsageError when it cannot be used)."""
    from charrnn.device import resolve_device

    return resolve_device(device)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@app.command(epilog=cli_text.VOCAB)
def vocab(
    corpus: Corpus,
    min_count: Annotated[int, typer.Option(help=SETTING_HELP["min_count"])] = 1,
    lines: Annotated[bool, typer.Option("--lines", help=SETTING_HELP["lines"])] = False,
    encoding_errors: EncodingErrors = "strict",
    json: Json = False,
):
    """Show the vocabulary a corpus gives: id, character, count and share."""
    from charrnn import report
    from charrnn.corpus import load_corpus

    loaded = load_corpus(corpus, lines=lines, encoding_errors=encoding_errors, min_count=min_count)
    if json:
        sys.stdout.write(report.vocab_json(loaded.vocab) + "\n")
    else:
        report.print_vocab_table(loaded.vocab)


def _with_settings(after):
    """Give the command an option for each training setting, inserted after its parameter `after`:
    flag, type and help as charrnn.config.TrainConfig declares them (`setting()`), the default
    shown in the help. The command takes them as **settings, each None when not given, so that it
    passes on only what the user asked for: the defaults are the library's, and a resumed run
    takes the rest from its checkpoint."""

    def option(s):
        shown = s.default_text
        if shown is None and s.default is not None and s.type is not bool:  # a flag needs no default shown
            shown = s.default
        text = s.help if shown is None else f"{s.help}  [default: {shown}]"
        info = typer.Option(s.flag, help=text, show_default=False)
        return inspect.Parameter(s.option, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                 annotation=Annotated[Optional[s.type], info])  # fmt: skip

    def add(command):
        params = [p for p in inspect.signature(command).parameters.values() if p.kind is not p.VAR_KEYWORD]
        at = [p.name for p in params].index(after) + 1
        command.__signature__ = inspect.Signature(params[:at] + [option(s) for s in SETTINGS] + params[at:])
        return command  # typer reads the options from its signature

    return add


@app.command(epilog=cli_text.TRAIN)
@_with_settings(after="force")
def train(
    corpus: Annotated[Optional[list[str]], typer.Argument(
        help="Text file(s); - reads standard input. With --resume: by default the files the checkpoint was trained on.",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False, help=(
        "Checkpoint to write (best: <stem>.best.npz).  [default: charrnn.npz; with --resume, the resumed file]"))] = None,
    resume: Annotated[Optional[Path], typer.Option(
        help="Continue training from this checkpoint, exactly where it stopped.", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --resume: accept a different corpus and fine-tune on it.")] = False,
    # here: the training settings (_with_settings)
    encoding_errors: Annotated[Optional[str], typer.Option(
        "--encoding-errors", help=f"{ENCODING_HELP}  [default: strict; with --resume, the checkpoint's]",
        show_default=False)] = None,
    sample_every: Annotated[Optional[int], typer.Option(show_default=False, help=(
        "Show a sample every this many steps (0: none).  [default: with every validation]"))] = None,
    sample_length: Annotated[int, typer.Option(help="Characters per sample shown while training.")] = 200,
    sample_prime: Annotated[str, typer.Option(help="Text the samples shown while training start from.")] = "",
    log: Annotated[Optional[Path], typer.Option("--log", metavar="<file.jsonl>", show_default=False, help=(
        "Write the run's progress as JSON lines (with --resume: appended)."))] = None,
    log_every: Annotated[int, typer.Option(help="Steps between --log lines (and a line at every validation).")] = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary, no samples.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the final summary to stdout as JSON.")] = False,
    device: Device = "auto",
    **settings,
):
    """Train a model on a corpus and save it to a checkpoint, or continue one with --resume."""
    from charrnn import api
    from charrnn.errors import UsageError
    from charrnn.progress import TrainingReporter, summary_line
    from charrnn.stop import EXIT_INTERRUPTED, StopOnSignal

    # what the user gave: the library has the defaults, and a resumed run the checkpoint's
    given = {name: value for name, value in dict(settings, encoding_errors=encoding_errors).items() if value is not None}
    console = stderr_console()
    with StopOnSignal() as stop, TrainingReporter(console, quiet=quiet) as reporter:
        def on_event(kind, info):
            if kind == "start":
                collect_again()  # set-up is done
            reporter(kind, info)

        samples = dict(sample_every=0 if quiet else sample_every, sample_length=sample_length, sample_prime=sample_prime)
        run = dict(on_event=on_event, should_stop=stop.requested, device=device, log=log, log_every=log_every, **samples)
        if resume is None:
            if force:
                raise UsageError("--force goes with --resume (it lets a resumed run fine-tune on another corpus)")
            result = api.train(corpus or None, out or "charrnn.npz", **run, **given)
        else:
            result = api.resume(resume, corpus or None, out=out, force=force, **run, **given)
    if result.stopped_early:
        again = ["charrnn", "train", "--resume", str(result.checkpoint)]
        if not result.corpus_paths:
            again += list(corpus)  # stdin or a pipe: the text must be given again
        error_line(f"interrupted at step {result.steps:,}; the state is saved in {result.checkpoint}; "
                   f"resume with: {shlex.join(again)}")  # fmt: skip
        raise typer.Exit(EXIT_INTERRUPTED[stop.signal])
    if json:
        from charrnn import report

        sys.stdout.write(report.to_json(result.as_dict()) + "\n")
    elif not quiet:
        console.print(summary_line(result), highlight=False, soft_wrap=True, markup=False)


@app.command(epilog=cli_text.SAMPLE)
def sample(
    model: ModelPath = None,
    prime: Annotated[str, typer.Option(help="Text to start from (printed first); - reads it from standard input.")] = "",
    prime_file: Annotated[Optional[str], typer.Option(
        "--prime-file", metavar="<file>", show_default=False,
        help="Start from this file's text (UTF-8; its final newline is dropped).")] = None,
    length: Annotated[int, typer.Option("--length", "-l", help=(
        "Characters per sample: exactly this many in a stream, at most this many in a record."))] = 500,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Sampling temperature; 0 picks the most likely character.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Draw only from the K most likely characters (0: all).")] = 0,
    top_p: Annotated[float, typer.Option(help=(
        "Draw only from the most likely characters whose probabilities reach P together (nucleus sampling; 1: all)."))] = 1.0,
    until_eos: Annotated[Optional[bool], typer.Option("--until-eos/--no-until-eos", show_default=False, help=(
        "End each sample where the model ends a record (a line of a --lines model, else a whole file), "
        "or stream exactly --length characters.  [default: records for models trained with --lines]"))] = None,
    stop: Annotated[Optional[list[str]], typer.Option("--stop", metavar="<text>", show_default=False, help=(
        "End a sample right after this text, e.g. '\\n\\n' (repeatable; escapes as in Python strings)."))] = None,
    prime_echo: Annotated[bool, typer.Option("--prime-echo/--no-prime-echo", help="Print the prime before each sample.")] = True,
    seed: Annotated[Optional[int], typer.Option(help="Random seed: the same seed gives the same text.", show_default=False)] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="How many samples (records or streams), one per line.")] = 1,
    device: Device = "auto",
):
    """Generate text from a trained model, streamed to stdout."""
    from charrnn.sample import Draw, StopScan, check_sampling_args, sample_rngs
    from charrnn.sample_input import read_prime, stop_strings
    from charrnn.model import default_model_path, load_model

    Draw(temperature, top_k, top_p)  # the flags' checks, before anything is read
    check_sampling_args(length, num_samples)
    stops = StopScan(stop_strings(stop)).stops  # refuses an empty one
    rngs = sample_rngs(seed)
    prime = read_prime(prime, prime_file)
    device = resolve(device)
    loaded = load_model(model or default_model_path())
    settings = dict(top_p=top_p, stop=stops, until_eos=until_eos, prime_echo=False, device=device)
    try:
        for i, rng in zip(range(num_samples), rngs):
            with warnings.catch_warnings():
                if i:
                    warnings.simplefilter("ignore", CharrnnWarning)  # the prime's unknown characters: once
                chunks = loaded.stream(prime, length, temperature, top_k, seed=rng, **settings)
            write_sample(prime if prime_echo else "", chunks)
            if i == 0:
                collect_again()
    except BrokenPipeError:
        quiet_broken_pipe()


def write_sample(prime, chunks):
    """Stream one sample to stdout as it is generated; every sample ends with a newline."""
    out = sys.stdout
    out.write(prime)
    out.flush()
    text = prime
    for text in chunks:
        out.write(text)
        out.flush()
    if not text.endswith("\n"):
        out.write("\n")
    out.flush()


@app.command("eval", epilog=cli_text.EVAL)
def evaluate(
    files: Corpus,
    model: ModelPath = None,
    encoding_errors: EncodingErrors = "strict",
    json: Json = False,
    device: Device = "auto",
):
    """Loss (nats/char), bits per char and perplexity of a model on a text."""
    from charrnn import report
    from charrnn.model import default_model_path, load_model

    device = resolve(device)
    result = load_model(model or default_model_path()).evaluate(list(files), encoding_errors=encoding_errors, device=device)
    sys.stdout.write((report.eval_json(result) if json else report.eval_line(result)) + "\n")


@app.command(epilog=cli_text.INFO)
def info(
    model: Annotated[Path, typer.Argument(help="Checkpoint to describe.")] = Path("charrnn.npz"),
    json: Json = False,
    devices: Annotated[bool, typer.Option(
        "--devices", help="Instead: the devices charrnn can compute on (CPU cores, numba-cuda, a CUDA GPU).")] = False,
):
    """Show a checkpoint's settings, size, vocabulary and training progress (or, with --devices, what
    charrnn can compute on)."""
    from charrnn import report

    if devices:
        from charrnn.device import describe_devices

        found = describe_devices()
        if json:
            sys.stdout.write(report.to_json(found) + "\n")
        else:
            report.print_devices(found)
        return
    from charrnn.model import describe, load_model

    details = describe(load_model(model), model)
    if json:
        sys.stdout.write(report.to_json(details) + "\n")
    else:
        report.print_info(details)


@app.command(epilog=cli_text.PLOT)
def plot(
    runs: Annotated[list[str], typer.Argument(help="Checkpoints or --log files; several are overlaid.", show_default=False)],
    x: Annotated[str, typer.Option("--x", help="steps or seconds (of training) along the x axis.")] = "steps",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", show_default=False, help=(
        "Write an image instead, .png or .svg (needs matplotlib: pip install 'charrnn[plot]').")) ] = None,
    width: Annotated[int, typer.Option(help="Terminal chart width in columns (0: the terminal's).")] = 0,
    height: Annotated[int, typer.Option(help="Terminal chart height in rows (0: the terminal's, at most 30).")] = 0,
):
    """Draw training and validation loss curves, in bits per character, against steps or seconds."""
    from charrnn.errors import UsageError
    from charrnn.plot import AXES, curves, read_run, terminal_chart, write_image

    if x not in AXES:
        raise UsageError(f"--x must be one of {', '.join(AXES)} (got {x!r})")
    if width < 0 or height < 0:
        raise UsageError("--width and --height must be positive (or 0: the terminal's)")
    lines = curves([read_run(path) for path in runs], x)
    if output is not None:
        return write_image(lines, output, x)
    columns, rows = os.get_terminal_size(sys.stdout.fileno()) if sys.stdout.isatty() else (100, 30)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(terminal_chart(lines, x, width or columns, height or min(rows - 2, 30), color) + "\n")


def main():
    # Start-up makes several hundred thousand long-lived objects (numba's types, loaded kernels), and
    # the garbage collector would walk them again and again while they are made: about 50 ms of a
    # 0.5 s `charrnn sample`. It comes back on, with them frozen, once a command is set up.
    gc.disable()
    app()


def collect_again():
    """Set-up is done: what exists now stays (frozen, never walked again); collect what comes after."""
    gc.freeze()
    gc.enable()
