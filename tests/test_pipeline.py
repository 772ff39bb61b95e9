"""The installed `charrnn` command as a real process: stdin, shell pipelines, exit codes, signals."""

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CORPUS = "the cat sat on the mat. " * 200 + "a dog ran to the big red hat, and the fox hid in a box.\n" * 5
TINY = ["--hidden", "16", "--seq", "8", "--batch", "4", "--steps", "30", "--eval-every", "10"]
_SCRIPT = Path(sys.executable).with_name("charrnn")  # the console script of this interpreter's environment
CHARRNN = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "charrnn"]
SH_CHARRNN = shlex.join(CHARRNN)  # the same command, for bash scripts

# The numba cache folder (set per xdist worker by conftest.py, if at all) is inherited, so the
# subprocesses reuse compiled kernels; colour is kept out of the output whatever the caller's env.
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}


def run(args, cwd, input=None, timeout=60):
    return subprocess.run(
        [*CHARRNN, *map(str, args)], cwd=cwd, input=input, capture_output=True, timeout=timeout, env=ENV
    )


def shell(script, cwd, timeout=60):
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, timeout=timeout, env=ENV, text=True)


def no_traceback(*streams):
    for s in streams:
        assert "Traceback" not in (s.decode() if isinstance(s, bytes) else s)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with corpus.txt and charrnn.npz trained from stdin by the real command."""
    folder = tmp_path_factory.mktemp("pipeline")
    (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    result = run(["train", "-", "--quiet", *TINY], folder, input=CORPUS.encode())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"" and result.stderr == b""
    assert (folder / "charrnn.npz").is_file() and (folder / "charrnn.best.npz").is_file()
    return folder


def test_module_entry_point_and_script_agree(work):
    help_text = subprocess.run([sys.executable, "-m", "charrnn", "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert help_text.returncode == 0 and "train" in help_text.stdout and help_text.stderr == ""
    info = run(["info", "--json"], work)
    assert info.returncode == 0 and info.stderr == b""
    assert json.loads(info.stdout)["steps"] == 30


def test_cat_into_train_through_a_shell_pipeline(work, tmp_path):
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    result = shell(f'set -o pipefail; cat corpus.txt | {SH_CHARRNN} train - --quiet {" ".join(TINY)}', tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    info = json.loads(run(["info", "--json"], tmp_path).stdout)
    assert info["corpus"] == json.loads(run(["info", "--json"], work).stdout)["corpus"]  # same text, same corpus


def head_of(command, work, nbytes=50):
    """`charrnn ... | head -c N`: (charrnn's exit status, head's, what head printed, charrnn's stderr, seconds)."""
    script = (
        f"{SH_CHARRNN} {command} 2>err.txt | head -c {nbytes} > head.txt; "
        'echo "${PIPESTATUS[0]} ${PIPESTATUS[1]}"'
    )
    start = time.monotonic()
    result = shell(script, work, timeout=60)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    own, head = map(int, result.stdout.split())
    return own, head, (work / "head.txt").read_bytes(), (work / "err.txt").read_text(), seconds


def test_sample_into_head_stops_quietly(work):
    own, head, out, err, seconds = head_of("sample --length 100000 -t 0", work)
    assert (own, head) == (0, 0)
    assert len(out) == 50
    assert err == ""
    assert seconds < 20


def test_endless_sampling_into_head_stops_at_once(work):
    # Far more text than could ever be generated in time: only the closed pipe can end it.
    own, head, out, err, seconds = head_of("sample --length 1000000000 --num-samples 1000000 --seed 1", work)
    assert (own, head) == (0, 0)
    assert len(out) == 50
    assert err == ""
    assert seconds < 20


@pytest.mark.parametrize(
    "command",
    ["vocab corpus.txt", "vocab corpus.txt --json", "info", "info --json", "eval corpus.txt", "eval corpus.txt --json",
     "sample -l 1000", "train --help"],
)  # fmt: skip
def test_reader_gone_before_any_output_is_no_failure(command, work):
    """`charrnn ... | true`: the pipe is closed before the first write; every command stops quietly with 0."""
    result = shell(f'{SH_CHARRNN} {command} 2>err.txt | true; echo "${{PIPESTATUS[0]}}"', work)
    assert result.stdout.split() == ["0"]
    assert (work / "err.txt").read_text() == ""


def test_big_table_into_head(work):
    chars = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 6000))  # a table far beyond a pipe's buffer
    (work / "wide.txt").write_text(chars * 2, encoding="utf-8")
    own, head, out, err, _ = head_of("vocab wide.txt", work, nbytes=20)
    assert (own, head, err) == (0, 0, "")
    assert len(out) == 20


def test_sample_streams_whole_output_to_a_file(work):
    result = run(["sample", "--prime", "the ", "-l", "5000", "-t", "0", "-n", "2"], work)
    assert result.returncode == 0 and result.stderr == b""
    samples = result.stdout.decode().split("\n")
    assert samples[2:] == [""] and samples[0] == samples[1] and samples[0].startswith("the ")
    assert b"\x1b" not in result.stdout


def test_prime_from_a_real_pipe(work):
    """`echo "the cat" | charrnn sample --prime -`, and --prime-file from a process substitution (a
    pipe, read once): the same text as --prime "the cat" (echo's newline is dropped)."""
    direct = run(["sample", "--prime", "the cat", "-l", "40", "--seed", "3"], work)
    assert direct.returncode == 0 and direct.stdout.decode().startswith("the cat")
    for script in (f'set -o pipefail; echo "the cat" | {SH_CHARRNN} sample --prime - -l 40 --seed 3',
                   f'{SH_CHARRNN} sample --prime-file <(echo "the cat") -l 40 --seed 3'):  # fmt: skip
        piped = shell(script, work)
        assert (piped.returncode, piped.stderr) == (0, ""), script
        assert piped.stdout == direct.stdout.decode(), script


def test_errors_from_the_real_process(work):
    result = run(["train", "missing.txt", "-q"], work)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr == b"charrnn: error: missing.txt: no such file\n"
    result = run(["sample", "--hidden", "3"], work)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.startswith(b"charrnn: error: No such option: --hidden") and result.stderr.count(b"\n") == 1
    result = run(["eval", "-", "--json"], work, input=b"\xff\xfe")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "charrnn: error: <stdin>: invalid UTF-8 at byte offset 0 (pass --encoding-errors replace or ignore to accept it)\n"
    )
    no_traceback(result.stdout, result.stderr)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_training_and_saves(signum, code, tmp_path):
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    proc = subprocess.Popen(
        [*CHARRNN, "train", "corpus.txt", "--hidden", "16", "--seq", "8", "--batch", "4", "--time", "60"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
    )  # fmt: skip
    try:
        first = proc.stderr.readline()  # printed once the signal handlers are in place
        assert first.startswith("training "), first
        time.sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert out == ""
    last = err.splitlines()[-1]
    assert last.startswith("charrnn: error: interrupted at step ")
    assert last.endswith("; the state is saved in charrnn.npz; resume with: charrnn train --resume charrnn.npz")
    assert sum(line.startswith("charrnn: ") for line in err.splitlines()) == 1
    no_traceback(err)
    steps = int(last.split("interrupted at step ")[1].split(";")[0].replace(",", ""))
    info = json.loads(run(["info", "--json"], tmp_path).stdout)
    assert info["steps"] == steps >= 1
    # the command it printed continues the run (here for 3 more steps, not another 60 seconds)
    again = run([*shlex.split(last.split("resume with: ")[1])[1:], "--steps", "3", "-q"], tmp_path)
    assert again.returncode == 0 and again.stderr == b"", again.stderr
    assert json.loads(run(["info", "--json"], tmp_path).stdout)["steps"] == steps + 3


def test_interrupted_stdin_run_says_to_give_the_corpus_again(tmp_path):
    proc = subprocess.Popen(
        [*CHARRNN, "train", "-", "--hidden", "16", "--seq", "8", "--batch", "4", "--time", "60", "-o", "piped.npz"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
    )  # fmt: skip
    try:
        proc.stdin.write(CORPUS.encode())
        proc.stdin.close()
        assert proc.stderr.readline().startswith(b"training ")
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 130
    assert err.decode().splitlines()[-1].endswith("; resume with: charrnn train --resume piped.npz -")


def _wait_for_new_save(path, previous, proc, timeout=30):
    """Until `path` is a file other than `previous` (saves replace it: a new inode), or proc ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            st = os.stat(path)
            if (st.st_ino, st.st_mtime_ns) != previous:
                return st.st_ino, st.st_mtime_ns
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise AssertionError(f"no new save of {path} (exit status {proc.poll()})")


@pytest.mark.slow  # 8 runs, each killed at a random moment
def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL training 8 times at random moments while it saves after every step (and the best
    file after every improving evaluation); each time, what is left loads, and the next run
    resumes from it. With H = 256 a save (about 1 MB, fsync'd) takes far longer than a step, so
    about a third of the kills land inside a save and leave its temporary file behind."""
    from charrnn.checkpoint import load_checkpoint

    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    out, best = tmp_path / "m.npz", tmp_path / "m.best.npz"
    fresh = ["train", "corpus.txt", "--hidden", "256", "--seq", "8", "--batch", "4", "--time", "60",
             "--save-every", "1", "--eval-every", "2", "-q", "-o", "m.npz"]  # fmt: skip
    rng = random.Random(4)
    previous, step = None, 0
    for kill in range(8):
        args = fresh if kill == 0 else ["train", "--resume", "m.npz", "--time", "60", "-q"]
        proc = subprocess.Popen([*CHARRNN, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        try:
            previous = _wait_for_new_save(out, previous, proc)
            time.sleep(rng.uniform(0, 0.2))
        finally:
            proc.kill()  # SIGKILL
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        st = os.stat(out)
        previous = st.st_ino, st.st_mtime_ns
        latest = load_checkpoint(out)
        assert latest.meta["step"] > step  # every run went on from the last one's checkpoint
        step = latest.meta["step"]
        if best.exists():
            assert load_checkpoint(best).meta["step"] <= step
    # A run that ends normally: temporary files of the killed saves are gone.
    finish = run(["train", "--resume", "m.npz", "--steps", "2", "-q"], tmp_path)
    assert finish.returncode == 0, finish.stderr.decode()
    # No temporary file is left. The best file exists only if some run lived to an improving
    # evaluation's save, which on a slow machine the random kills can prevent (seen once in CI here).
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names in (["corpus.txt", "m.best.npz", "m.npz"], ["corpus.txt", "m.npz"]), names
    assert load_checkpoint(out).meta["step"] == step + 2


# ------------------------------------------------------------------ hostile input from the outside


def test_stdin_at_end_of_file_and_stdin_closed(tmp_path):
    """`< /dev/null` is an empty corpus; a closed descriptor 0 (`0<&-`) is a closed stdin. Neither leaves a file."""
    devnull = subprocess.run([*CHARRNN, "train", "-", "-q"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                             capture_output=True, env=ENV, timeout=60)  # fmt: skip
    assert devnull.returncode == 1 and devnull.stdout == b""
    assert devnull.stderr == b"charrnn: error: <stdin>: corpus is empty\n"
    closed = shell(f"{SH_CHARRNN} train - -q 0<&-", tmp_path)
    assert closed.returncode == 1 and closed.stdout == ""
    assert closed.stderr == "charrnn: error: stdin is closed\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_train_on_a_fifo(tmp_path):
    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:  # blocks until charrnn opens the other end
            f.write(CORPUS.encode())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = run(["train", "corpus.fifo", *TINY, "-q"], tmp_path)
    writer.join(timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"" and result.stderr == b""
    info = json.loads(run(["info", "--json"], tmp_path).stdout)
    assert info["steps"] == 30 and info["corpus"]["chars"] == len(CORPUS)
    assert "paths" not in info["corpus"]  # a pipe cannot be read again: a resume must be given the text
    again = run(["train", "--resume", "charrnn.npz", "--steps", "1"], tmp_path)
    assert again.returncode == 2
    assert again.stderr.decode() == (
        "charrnn: error: charrnn.npz was trained on standard input or a pipe; give its corpus: "
        "charrnn train --resume charrnn.npz CORPUS\n"
    )
