"""One training run per checkpoint: `<out>.lock`, held with flock while a run writes `out`.

The kernel drops a flock when its process dies, `kill -9` included, so a lock is never left stuck;
the file holds the owner's process id for the message the second run gets. The owner removes the
file when it is done. A run that locked a file someone removed meanwhile (the owner finishing just
then) locks again, so two runs never hold different files of the same name. Where fcntl does not
exist (Windows) runs are not locked.
"""

import os
from contextlib import contextmanager

from charrnn.errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


def lock_path(out):
    return f"{os.fspath(out)}.lock"


@contextmanager
def writing(out):
    """Hold the lock of checkpoint `out` for the block; UsageError naming the holder when another
    process holds it."""
    if fcntl is None:
        yield
        return
    path = lock_path(out)
    fd = _acquire(path, out)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # still ours: removed before the lock is let go
        except OSError:
            pass
        os.close(fd)


def _acquire(path, out):
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"cannot write checkpoint {out}: cannot create {path} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise UsageError(
                f"{out} is being written by another charrnn train ({who}); wait for it, stop it, or choose another --out"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed this file as we locked it: lock the one there now


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
