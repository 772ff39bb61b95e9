"""`charrnn plot`: loss curves from checkpoints and logs, in the terminal or as an image."""

import sys

import numpy as np
import pytest

from helpers import TINY, assert_error, cli, ok

pytestmark = pytest.mark.usefixtures("in_tmp")  # every test runs in its own folder holding corpus.txt


@pytest.fixture
def runs(in_tmp):
    tmp_path = in_tmp
    ok("train", "corpus.txt", "-o", "a.npz", *TINY, "--log", "a.jsonl", "--sample-every", "0")
    ok("train", "corpus.txt", "-o", "b.npz", *TINY, "--cell", "gru", "--sample-every", "0")
    return tmp_path


def test_a_checkpoint_plots_in_the_terminal(runs):
    chart = ok("plot", "a.npz", "--width", "80", "--height", "20").stdout
    lines = chart.rstrip("\n").split("\n")
    assert len(lines) == 20 and max(map(len, lines)) <= 80
    assert "loss, bits per character" in lines[0] and "train" in chart and "val" in chart and "step" in lines[-1]
    assert "\x1b" not in chart  # not a terminal: no colour


def test_runs_are_overlaid_with_a_legend_by_name_and_logs_plot_too(runs):
    chart = ok("plot", "a.npz", "b.npz", "a.jsonl", "--x", "seconds", "--width", "90", "--height", "24").stdout
    for label in ("a train", "a val", "b train", "b val"):
        assert label in chart
    assert "seconds of training" in chart


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_an_image_is_written(runs, suffix, magic):
    pytest.importorskip("matplotlib")
    result = ok("plot", "a.npz", "b.npz", "--output", f"curves{suffix}")
    assert result.stdout == "" and (runs / f"curves{suffix}").read_bytes()[:5].startswith(magic)
    assert not list(runs.glob(".curves*"))  # no temporary file left


def test_plot_mistakes_are_one_line(runs, monkeypatch):
    assert_error(cli("plot", "a.npz", "-o", "c.gif"), 2, "--output c.gif: the image must end in .png or .svg")
    assert_error(cli("plot", "a.npz", "--x", "epochs"), 2, "--x must be one of steps, seconds (got 'epochs')")
    assert_error(cli("plot", "nope.npz"), 2, "nope.npz: no such checkpoint or log")
    (runs / "junk.jsonl").write_text("hello\n{}\n")
    assert_error(cli("plot", "junk.jsonl"), 2, "junk.jsonl: line 1 is not JSON; is it a charrnn --log file?")
    arrays = dict(np.load("a.npz", allow_pickle=False))
    np.savez("old.npz", **{k: v for k, v in arrays.items() if not k.startswith("history.")})
    assert_error(cli("plot", "old.npz"), 1, "old.npz: holds no loss history (it was trained before charrnn kept one); "
                                            "resume it to start one, or plot its --log file")  # fmt: skip
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    assert_error(cli("plot", "a.npz", "-o", "c.png"), 1, "--output c.png needs matplotlib: pip install 'charrnn[plot]'")


def test_a_log_cut_short_by_a_kill_still_plots(runs):
    with open("a.jsonl", "a") as f:
        f.write('{"step": 40, "train_lo')
    assert "train" in ok("plot", "a.jsonl").stdout
