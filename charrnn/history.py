"""The loss curves of a run, kept in its checkpoint so that `charrnn plot` needs nothing else.

Two float32 arrays, each row (step, elapsed seconds, loss in nats per character):
    history.train  (N, 3)  the mean training loss over each `every` steps
    history.val    (M, 3)  every validation
They are compact by construction: `history.train` starts with a row every 10 steps, and when it
reaches MAX_ROWS rows its neighbours are merged in pairs and the interval doubles, so a run of any
length keeps at most MAX_ROWS rows (about 100 KB). Steps are exact up to 2**24 (float32). A resumed
run continues both arrays and the clock ("elapsed" in meta: seconds of training so far).
"""

import numpy as np

FIRST_EVERY = 10
MAX_ROWS = 8192
NAMES = ("history.train", "history.val")


class History:
    def __init__(self, state=None, meta=None):
        state, meta = state or {}, meta or {}
        self.train = [tuple(map(float, row)) for row in state.get("history.train", ())]
        self.val = [tuple(map(float, row)) for row in state.get("history.val", ())]
        every, elapsed = meta.get("history_every"), meta.get("elapsed")
        # Other programs may write meta: a value that is not what we wrote starts afresh.
        self.every = every if isinstance(every, int) and 1 <= every <= 1 << 40 else FIRST_EVERY
        ok = isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and 0 <= elapsed < 1e12
        self.elapsed = float(elapsed) if ok else 0.0  # seconds of training before this run
        # The losses since the last row, summed in step order, carried across a resume: the rows
        # of a resumed run are then bitwise those of one run.
        partial = meta.get("history_partial")
        ok = isinstance(partial, list) and len(partial) == 2 and isinstance(partial[0], float) and isinstance(partial[1], int)
        self.sum, self.count = (float(partial[0]), int(partial[1])) if ok else (0.0, 0)

    def step(self, step, elapsed, loss):
        self.sum += loss
        self.count += 1
        if step % self.every == 0:
            self.train.append((step, self.elapsed + elapsed, self.sum / self.count))
            self.sum, self.count = 0.0, 0
            if len(self.train) >= MAX_ROWS:
                self._halve()

    def validation(self, step, elapsed, loss):
        self.val.append((step, self.elapsed + elapsed, loss))

    def _halve(self):
        """Merge rows in pairs (the later step and time, the mean loss); the interval doubles."""
        rows = self.train
        merged = [(b[0], b[1], (a[2] + b[2]) / 2) for a, b in zip(rows[0::2], rows[1::2])]
        if len(rows) % 2:
            merged.append(rows[-1])
        self.train = merged
        self.every *= 2

    def arrays(self):
        return {
            "history.train": np.array(self.train, np.float32).reshape(-1, 3),
            "history.val": np.array(self.val, np.float32).reshape(-1, 3),
        }

    def meta(self, elapsed):
        """The meta keys a checkpoint keeps for the history, after `elapsed` seconds of this run."""
        return {"history_every": self.every, "elapsed": self.elapsed + elapsed, "history_partial": [self.sum, self.count]}
