"""Shared fixtures. Each pytest-xdist worker gets its own numba cache folder, so parallel
workers never race writing the same cache files."""

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

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def shakespeare():
    """The public tiny Shakespeare corpus beside the project; tests using it skip when it is absent."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not found")
    return SHAKESPEARE
