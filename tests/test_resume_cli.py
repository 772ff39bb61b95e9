"""Exact resume, refusals, divergence and failed writes through the CLI: one line on stderr, the checkpoint kept (test_resume's promise, seen by a user)."""

import errno
import os
import re

import numpy as np
import pytest

import charrnn.progress
from charrnn import checkpoint as checkpoint_module
from charrnn.checkpoint import load_checkpoint
from charrnn.train_loop import best_path

import helpers
from checkpoint_helpers import assert_same_state
from helpers import OTHER, TRAIN_TEXT, nan_at


# ------------------------------------------------------------------ through the CLI

CLI_TINY = ["--hidden", "16", "--seq", "8", "--batch", "4", "--eval-every", "7", "--save-every", "11", "--lr-decay", "0.7"]


def cli(*args, input=None):
    """helpers.cli, and nothing on stdout: every command here is a quiet train or a refusal."""
    result = helpers.cli(*args, input=input)
    assert result.stdout == ""
    return result


def ok(*args, input=None):
    result = cli(*args, input=input)
    assert result.exit_code == 0, result.stderr
    return result


def one_error(result, code):
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error: "), result.stderr
    return lines[0][len("charrnn: error: "):]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """As conftest.py's in_tmp, but corpus.txt is TRAIN_TEXT, beside other.txt (OTHER)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(TRAIN_TEXT)
    (tmp_path / "other.txt").write_text(OTHER)
    return tmp_path


@pytest.fixture
def step_losses(monkeypatch):
    """Every "step" event's loss the CLI's progress reporter receives."""
    losses = []
    real = charrnn.progress.TrainingReporter.__call__

    def record(self, kind, info):
        if kind == "step":
            losses.append(info["loss"])
        return real(self, kind, info)

    monkeypatch.setattr(charrnn.progress.TrainingReporter, "__call__", record)
    return losses


def test_cli_resume_is_bitwise_exact(in_tmp, step_losses):
    # 85 windows per epoch: the resumed 80 steps cross the epoch boundary at 170; 100 is no multiple of 7 or 11
    flat = ("--lr-schedule", "constant")  # 100 steps + 80 more are one 180-step plan only without cosine
    ok("train", "corpus.txt", *CLI_TINY, *flat, "--steps", "180", "-q", "-o", "whole.npz")
    whole = list(step_losses)
    step_losses.clear()
    ok("train", "corpus.txt", *CLI_TINY, *flat, "--steps", "100", "-q", "-o", "split.npz")
    result = ok("train", "--resume", "split.npz", "--steps", "80")  # the corpus: the one recorded
    assert result.stderr.splitlines()[0].endswith("resuming at step 100, to step 180")
    assert "checkpoint split.npz (best: split.best.npz)" in result.stderr.splitlines()[-1]
    assert step_losses == whole
    assert_same_state(load_checkpoint(in_tmp / "split.npz"), load_checkpoint(in_tmp / "whole.npz"))
    assert load_checkpoint(in_tmp / "split.best.npz").meta["step"] <= 180


def test_cli_resume_refusals(in_tmp):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "20", "-q", "-o", "m.npz")
    assert one_error(cli("train", "--resume", "m.npz", "--hidden", "32"), 2) == (
        "--hidden 32 conflicts with m.npz, trained with --hidden 16; a resumed run keeps the checkpoint's settings "
        "(leave --hidden out, or train a new model)"
    )
    assert one_error(cli("train", "--resume", "m.npz"), 2) == (
        "m.npz has finished its plan of 20 steps; give --steps, --epochs or --time to train it further"
    )
    assert one_error(cli("train", "--resume", "m.npz", "--steps", "0"), 2) == "--steps must be at least 1 (got 0)"
    assert one_error(cli("train", "--resume", "missing.npz"), 1) == "missing.npz: no such checkpoint"
    assert one_error(cli("train", "corpus.txt", "--force"), 2).startswith("--force goes with --resume")
    assert one_error(cli("train"), 2) == "Missing argument 'corpus'."
    message = one_error(cli("train", "--resume", "m.npz", "other.txt", "--steps", "3"), 1)
    assert re.fullmatch(r"other\.txt is not the corpus m\.npz was trained on \(fingerprint [0-9a-f]{12} vs [0-9a-f]{12}\); "
                        r"pass --force to fine-tune it on this corpus", message)  # fmt: skip
    before = (in_tmp / "m.npz").read_bytes()
    (in_tmp / "corpus.txt").write_text(TRAIN_TEXT + "changed")
    assert "corpus.txt is not the corpus m.npz was trained on" in one_error(cli("train", "--resume", "m.npz", "--steps", "3"), 1)
    assert (in_tmp / "m.npz").read_bytes() == before


def test_cli_fine_tune_with_force_warns_about_unknown_characters(in_tmp):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "20", "-q", "-o", "m.npz")
    result = ok("train", "--resume", "m.npz", "other.txt", "--steps", "5", "--force", "-q")
    unknown = "".join(sorted(set(OTHER) - set(TRAIN_TEXT)))
    assert result.stderr == "charrnn: warning: not in the model's vocabulary, read as <unk>: " + ", ".join(map(repr, unknown)) + "\n"
    meta = load_checkpoint(in_tmp / "m.npz").meta
    assert meta["step"] == 25 and meta["data_origin"] == 20
    assert meta["corpus"]["paths"] == [os.path.abspath("other.txt")]
    # from now on other.txt is the model's corpus: resuming needs no --force
    ok("train", "--resume", "m.npz", "--steps", "2", "-q")
    assert load_checkpoint(in_tmp / "m.npz").meta["step"] == 27


def test_cli_resume_of_a_stdin_model_needs_the_corpus(in_tmp):
    ok("train", "-", *CLI_TINY, "--steps", "10", "-q", "-o", "piped.npz", input=TRAIN_TEXT.encode())
    assert "paths" not in load_checkpoint(in_tmp / "piped.npz").meta["corpus"]
    assert one_error(cli("train", "--resume", "piped.npz", "--steps", "2"), 2) == (
        "piped.npz was trained on standard input or a pipe; give its corpus: charrnn train --resume piped.npz CORPUS"
    )
    ok("train", "--resume", "piped.npz", "-", "--steps", "2", "-q", input=TRAIN_TEXT.encode())
    ok("train", "--resume", "piped.npz", "corpus.txt", "--steps", "2", "-q")  # the same text from a file: the same corpus
    assert load_checkpoint(in_tmp / "piped.npz").meta["step"] == 14


def test_cli_resume_writes_elsewhere_with_out(in_tmp):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "10", "-q", "-o", "m.npz")
    before = (in_tmp / "m.npz").read_bytes()
    summary = ok("train", "--resume", "m.npz", "--steps", "3", "-o", "next.npz").stderr.splitlines()[-1]
    assert (in_tmp / "m.npz").read_bytes() == before
    assert load_checkpoint(in_tmp / "next.npz").meta["step"] == 13
    # the summary names a best file only if this run wrote one
    assert summary.endswith("checkpoint next.npz (best: next.best.npz)" if (in_tmp / "next.best.npz").exists()
                            else "checkpoint next.npz")  # fmt: skip


def test_cli_divergence_is_one_line_and_keeps_the_checkpoint(in_tmp, monkeypatch):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "10", "-q", "-o", "m.npz")
    before = (in_tmp / "m.npz").read_bytes(), (in_tmp / "m.best.npz").read_bytes()
    nan_at(monkeypatch, 1, "loss")
    message = one_error(cli("train", "--resume", "m.npz", "--steps", "20", "-q"), 1)
    assert message.startswith("training diverged at step 11 (loss nan, gradient norm ")
    assert message.endswith("; m.npz still holds the state of step 10; try a lower --lr or --clip")
    assert ((in_tmp / "m.npz").read_bytes(), (in_tmp / "m.best.npz").read_bytes()) == before
    assert load_checkpoint(in_tmp / "m.npz").meta["step"] == 10


def test_cli_divergence_before_any_save(in_tmp, monkeypatch):
    nan_at(monkeypatch, 2, "gradient")
    message = one_error(cli("train", "corpus.txt", *CLI_TINY, "--steps", "5", "-q", "-o", "fresh.npz"), 1)
    assert message.startswith("training diverged at step 2 (loss ") and "gradient norm inf" in message
    assert message.endswith("; nothing was saved to fresh.npz; try a lower --lr or --clip")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["corpus.txt", "other.txt"]


def test_cli_disk_full_is_one_line_naming_the_path(in_tmp, monkeypatch):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "11", "--eval-every", "100", "-q", "-o", "m.npz")
    real = np.savez
    seen = []

    def savez(f, **arrays):
        seen.append((in_tmp / "m.npz").read_bytes())  # what m.npz holds before this save
        if len(seen) < 2:
            return real(f, **arrays)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    # a new run writing over m.npz: its save at step 11 works, the one at step 22 hits a full disk
    result = cli("train", "corpus.txt", *CLI_TINY, "--steps", "40", "--eval-every", "100", "-q", "-o", "m.npz", "--seed", "9")
    assert one_error(result, 1) == "cannot write checkpoint m.npz: No space left on device (at step 22); " \
                                   "m.npz still holds the state of step 11"
    assert (in_tmp / "m.npz").read_bytes() == seen[-1]
    assert load_checkpoint(in_tmp / "m.npz").meta["train"]["seed"] == 9
    assert not [p for p in in_tmp.iterdir() if p.name.endswith(".tmp")]


def test_best_path_of_the_resumed_file(in_tmp):
    ok("train", "corpus.txt", *CLI_TINY, "--steps", "8", "-q", "-o", "m.npz")
    (in_tmp / "m.best.npz").unlink()
    ok("train", "--resume", "m.npz", "--steps", "6", "-q")  # evaluates at 14 (7 divides it): a new best
    assert load_checkpoint(best_path(in_tmp / "m.npz")).meta["step"] == 14
