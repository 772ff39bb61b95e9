"""Ctrl-C and SIGTERM during training: a request to stop after the current step, and save."""

import signal

EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopOnSignal:
    """Turn SIGINT / SIGTERM into a request to stop after the current step (and save)."""

    def __init__(self):
        self.signal = None

    def requested(self):
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in EXIT_INTERRUPTED}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        return False
