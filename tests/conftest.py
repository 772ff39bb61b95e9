"""Shared fixtures (shared plain helpers and constants are in helpers.py and checkpoint_helpers.py),
and the `slow` marker: slow tests run only when CHARRNN_TESTS=all is set.

Each pytest-xdist worker gets its own numba cache folder, so parallel workers never race writing
the same cache files."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "NUMBA_CACHE_DIR" not in os.environ:  # must be set before numba is imported
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"charrnn-numba-{_worker}")

# Encoded-corpus caches made by tests go to a throwaway folder, not the user's cache. The process
# that makes it removes it at exit; xdist workers inherit its path, and the controller outlives them.
if "CHARRNN_CACHE_DIR" not in os.environ:
    os.environ["CHARRNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="charrnn-corpora-")
    atexit.register(shutil.rmtree, os.environ["CHARRNN_CACHE_DIR"], ignore_errors=True)

# Commands run without --device compute on the CPU, as the tests expect (bitwise resumes), even on a
# machine with a GPU; tests of --device name it. Set CHARRNN_DEVICE=cuda to run them on a GPU instead.
os.environ.setdefault("CHARRNN_DEVICE", "cpu")

import pytest  # noqa: E402
from checkpoint_helpers import make_checkpoint  # noqa: E402
from helpers import CORPUS, NAMES_TEXT, TINY, TRAIN_TEXT, ok  # noqa: E402

from charrnn.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from charrnn.corpus import load_corpus  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def shakespeare():
    """The public tiny Shakespeare corpus beside the project; tests using it skip when it is absent."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not found")
    return SHAKESPEARE


# ------------------------------------------------------------------ slow tests

SLOW_SKIP = "slow: set CHARRNN_TESTS=all to run it"


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked slow unless CHARRNN_TESTS=all (what .ci/run sets)."""
    if os.environ.get("CHARRNN_TESTS") == "all":
        return
    skip = pytest.mark.skip(reason=SLOW_SKIP)
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


# ------------------------------------------------------------------ a folder of one's own


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """The test runs in its own folder, tmp_path, holding corpus.txt (helpers.CORPUS); default
    outputs land there. Not autouse, as some tests count the files in their tmp_path: a file has
    every test run so with `pytestmark = pytest.mark.usefixtures("in_tmp")`, a test by naming it
    (or corpus)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return tmp_path


@pytest.fixture
def corpus(in_tmp):
    """in_tmp's corpus.txt, as a path relative to the test's folder."""
    return Path("corpus.txt")


# ------------------------------------------------------------------ tiny models, through the CLI


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """One tiny model trained on CORPUS, reused by a file's sample / eval / info tests (read-only)."""
    folder = tmp_path_factory.mktemp("model")
    (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    out = folder / "model.npz"
    ok("train", folder / "corpus.txt", *TINY, "--quiet", "--out", out)
    return out


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    """A tiny --lines model: every name is one record."""
    folder = tmp_path_factory.mktemp("names")
    (folder / "names.txt").write_text(NAMES_TEXT, encoding="utf-8")
    out = folder / "names.npz"
    ok("train", folder / "names.txt", "--lines", *TINY[:-4], "--steps", "80", "--eval-every", "20", "-q", "-o", out)
    return out


# ------------------------------------------------------------------ the library's train()


@pytest.fixture
def loaded_corpus(tmp_path):
    """helpers.TRAIN_TEXT as load_corpus gives it (from tmp_path/tiny.txt), for train()."""
    path = tmp_path / "tiny.txt"
    path.write_text(TRAIN_TEXT)
    return load_corpus([str(path)])


# ------------------------------------------------------------------ checkpoints


@pytest.fixture
def ckpt() -> Checkpoint:
    """checkpoint_helpers' default small checkpoint: a 2-layer GRU with its training state."""
    return make_checkpoint()


@pytest.fixture
def good(tmp_path, ckpt) -> str:
    """Path of a valid checkpoint file (ckpt, saved)."""
    path = str(tmp_path / "model.npz")
    save_checkpoint(path, ckpt)
    return path
