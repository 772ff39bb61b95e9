"""Where charrnn keeps what it can rebuild: corpora (downloaded and encoded) and compiled kernels.

Every folder derives from the user cache folder that platformdirs gives for "charrnn"
(~/.cache/charrnn on Linux, honouring $XDG_CACHE_HOME; ~/Library/Caches/charrnn on macOS;
%LOCALAPPDATA%\\charrnn\\Cache on Windows), and each can be moved by an environment variable.
"""

import os
from pathlib import Path


def user_cache():
    import platformdirs

    return platformdirs.user_cache_path("charrnn", appauthor=False)


def corpus_folder():
    """Downloaded corpora (`charrnn corpus get`) and the memory-mapped encoded ones (corpus_cache.py):
    $CHARRNN_CACHE_DIR, else <user cache>/corpora."""
    return Path(os.environ["CHARRNN_CACHE_DIR"]) if os.environ.get("CHARRNN_CACHE_DIR") else user_cache() / "corpora"


def kernel_folder():
    """Compiled kernels when $NUMBA_CACHE_DIR is not set (numba's own variable wins): <user cache>/kernels."""
    return user_cache() / "kernels"
