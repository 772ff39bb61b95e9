"""How format1.npz and format1.json were made: run once, with the charrnn of commit 0b8410e (the
last one writing checkpoint format 1), never by the tests. From the repository root:

    git worktree add /tmp/old0b8 0b8410e
    PYTHONPATH=/tmp/old0b8 .venv/bin/python tests/data/make_format1.py
    git worktree remove --force /tmp/old0b8

It trains a tiny one-layer model on format1.txt, then records what that code computes from it
(eval loss, a greedy and two seeded samples, the arrays after resuming for 5 steps), so that
tests/test_format1.py can check that the current code reads the old file and gets the same.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRAIN = ["--hidden", "16", "--seq", "8", "--batch", "2", "--steps", "30", "--eval-every", "10",
         "--val-frac", "0.1", "--threads", "1", "--seed", "3", "--lr", "0.05"]
# Samples recorded: (flags, key). --lr 0.05 so that 30 steps give a greedy sample that is not
# one repeated character, which would make a weak check.
SAMPLES = {
    "greedy": ["--temperature", "0", "--length", "60"],
    "seeded": ["--seed", "7", "--length", "60", "--prime", "the "],
    "seeded_top_k": ["--seed", "11", "--length", "40", "--temperature", "0.8", "--top-k", "5", "-n", "2"],
}


def charrnn(*args, cwd):
    env = {**os.environ, "CHARRNN_DEVICE": "cpu", "CHARRNN_CACHE_DIR": str(Path(cwd) / "cache")}
    done = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout


def summary(arr):
    """Checksums of one float32 array: enough to compare without storing it."""
    arr = np.ascontiguousarray(arr, dtype="<f4")
    return {"shape": list(arr.shape), "sum": float(arr.astype(np.float64).sum()),
            "abs_sum": float(np.abs(arr.astype(np.float64)).sum()),
            "first": [float(x) for x in arr.reshape(-1)[:6]],
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}


def main():
    import charrnn as old

    code = str(Path(old.__file__).resolve())
    assert not code.startswith(str(HERE.parent.parent)), f"imports the current charrnn ({code}), not 0b8410e's"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(HERE / "format1.txt", tmp)
        charrnn("train", "format1.txt", *TRAIN, "-q", "-o", "format1.npz", cwd=tmp)
        shutil.copy(Path(tmp) / "format1.npz", HERE / "format1.npz")
        record = {"made_by": "charrnn at commit 0b8410e (checkpoint format 1)", "train_flags": TRAIN,
                  "eval": json.loads(charrnn("eval", "-m", "format1.npz", "format1.txt", "--json", cwd=tmp)),
                  "samples": {k: {"args": a, "stdout": charrnn("sample", "-m", "format1.npz", *a, cwd=tmp)}
                              for k, a in SAMPLES.items()}}
        charrnn("train", "--resume", "format1.npz", "--steps", "5", "-q", "-o", "resumed.npz", "format1.txt", cwd=tmp)
        with np.load(Path(tmp) / "resumed.npz", allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {name: summary(npz[name]) for name in npz.files if name not in ("meta", "vocab")}
        record["resume"] = {"steps": 5, "meta": {k: meta[k] for k in (
            "step", "optimizer_updates", "best_val_loss", "last_val_loss", "version")}, "arrays": arrays}
    (HERE / "format1.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
