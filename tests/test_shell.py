"""Shell conventions: --version, examples and exit codes in --help, completion, --json summaries,
NO_COLOR, and one training run per checkpoint."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import charrnn.cli

from charrnn import __version__
from charrnn.cli_text import EXIT_CODES
from charrnn.lock import lock_path, writing
from helpers import TINY, assert_error, cli, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt

COMMANDS = ("vocab", "train", "sample", "eval", "info", "plot", "corpus", "corpus list", "corpus get")



def test_version():
    assert ok("--version").stdout == f"charrnn {__version__}\n"


def test_help_lists_the_exit_codes_and_every_command_ends_with_examples():
    text = ok("--help").stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{code:<4} {meaning}" in text
    assert "--install-completion" in text and "--show-completion" in text
    for command in COMMANDS:
        tail = ok(*command.split(), "--help").stdout.rstrip().splitlines()
        examples = tail[tail.index("  Examples:") + 1 :]
        assert 1 <= len(examples) <= 2 and all(f"charrnn {command}" in line for line in examples)


def test_train_json_summary_goes_to_stdout(corpus):
    result = ok("train", corpus, "-o", "m.npz", *TINY, "--json")
    summary = json.loads(result.stdout)
    assert summary["steps"] == 30 and summary["checkpoint"] == "m.npz" and summary["best_checkpoint"] == "m.best.npz"
    assert summary["stopped_early"] is False and summary["best_val_loss"] > 0
    assert "trained 30 steps" not in result.stderr


def colours(text):
    """The colour parameters (30-38, 40-48, 90-97, 100-107) of the SGR escapes in text."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        found += [p for p in params.split(";") if p.isdigit() and (30 <= int(p) <= 48 or 90 <= int(p) <= 107)]
    return found


@pytest.mark.parametrize("no_color", [False, True])
def test_no_color_is_honoured_on_a_terminal(corpus, no_color):
    runner = CliRunner(env={"FORCE_COLOR": "1", "NO_COLOR": "1" if no_color else None, "COLUMNS": "160"})
    result = runner.invoke(charrnn.cli.app, ["train", str(corpus), "-o", "m.npz", *TINY])
    assert result.exit_code == 0, result.stderr
    assert "trained 30 steps" in result.stderr
    assert bool(colours(result.stderr)) is not no_color  # colour on a forced terminal, none with NO_COLOR


def test_a_second_run_on_the_same_out_is_refused_naming_the_first(corpus):
    with writing("m.npz"):
        assert open(lock_path("m.npz")).read() == f"{os.getpid()}\n"
        result = cli("train", corpus, "-o", "m.npz", *TINY)
        assert_error(result, 2, f"m.npz is being written by another charrnn train (process {os.getpid()}); "
                                "wait for it, stop it, or choose another --out")  # fmt: skip
        ok("train", corpus, "-o", "other.npz", *TINY)  # another --out is free
    assert not os.path.exists(lock_path("m.npz"))  # removed when the run is done
    ok("train", corpus, "-o", "m.npz", *TINY)
    assert not os.path.exists(lock_path("m.npz"))


def test_a_lock_outlives_no_kill_9(corpus):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from charrnn.lock import writing\nwith writing('m.npz'): time.sleep(120)"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(lock_path("m.npz")) and open(lock_path("m.npz")).read().strip()):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        assert f"(process {holder.pid})" in cli("train", corpus, "-o", "m.npz", *TINY).stderr
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait()
    assert os.path.exists(lock_path("m.npz"))  # left behind, but not held
    ok("train", corpus, "-o", "m.npz", *TINY)
    assert not os.path.exists(lock_path("m.npz"))


def test_sample_and_eval_default_to_the_best_state_of_the_last_run(corpus):
    import shutil
    from pathlib import Path

    from charrnn.model import default_model_path

    ok("train", corpus, *TINY)  # charrnn.npz at step 30, charrnn.best.npz at its best validation
    assert default_model_path() == Path("charrnn.best.npz")
    ok("train", corpus, *TINY[:-4], "--steps", "10", "-o", "early.npz", "--val-frac", "0")
    shutil.copy("early.npz", "charrnn.best.npz")  # an earlier state of the same run: a different text
    sample = ["sample", "--seed", "3", "-l", "60"]
    best = ok(*sample, "-m", "charrnn.best.npz").stdout
    assert ok(*sample).stdout == best != ok(*sample, "-m", "charrnn.npz").stdout
    assert ok("eval", corpus).stdout == ok("eval", corpus, "-m", "charrnn.best.npz").stdout
    ok("train", corpus, *TINY, "--seed", "1", "--val-frac", "0")  # another run, which writes no best file
    assert default_model_path() == Path("charrnn.npz")  # the earlier run's best is passed over
    assert ok(*sample).stdout == ok(*sample, "-m", "charrnn.npz").stdout
    Path("charrnn.npz").unlink()
    assert default_model_path() == Path("charrnn.best.npz")
    Path("charrnn.best.npz").write_bytes(b"not a checkpoint")
    assert default_model_path() == Path("charrnn.npz")  # and the error names the missing file
    assert_error(cli("sample"), 1, "charrnn.npz: no such checkpoint")
