"""Samples while training: a short text from the model as it is now, reported as a "sample" event.

They watch the run and never steer it. Each sample draws from its own generator, seeded by
(training seed, step), never from the run's, and reads the weights without changing them, so a run
with live samples is bitwise the run without them, and the sample at a step is the same at any
thread count and after a resume.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from charrnn.errors import UsageError, unknown_warning
from charrnn.sample import encode_prime, generate
from charrnn.model import Model

TEMPERATURE = 0.8
STREAM = 0x11FE  # the generator's second seed word: keeps these draws apart from every other use of the seed


@dataclass(frozen=True)
class LiveSamples:
    every: int = 0  # steps between samples; 0: none
    length: int = 200  # characters
    prime: str = ""

    def __post_init__(self):
        if not (isinstance(self.every, int) and self.every >= 0):
            raise UsageError(f"--sample-every must be a non-negative number of steps (got {self.every!r}); 0 turns samples off")
        if not (isinstance(self.length, int) and 1 <= self.length <= 100_000):
            raise UsageError(f"--sample-length must be an integer from 1 to 100000 (got {self.length!r})")
        if not isinstance(self.prime, str):
            raise UsageError(f"--sample-prime must be text (got {self.prime!r})")

    def due(self, step):
        return self.every > 0 and step % self.every == 0


class LiveSampler:
    """Makes the samples of one run from its FlatParams (read, never written)."""

    def __init__(self, live, params, vocab, lines, seed):
        self.live, self.seed = live, seed
        self.model = Model(params=params, vocab=vocab, meta={"lines": lines})
        self.prime, unknown = encode_prime(vocab, live.prime, lines)
        if unknown:
            warnings.warn(unknown_warning(unknown, "--sample-prime: not in the vocabulary"), stacklevel=2)

    def text(self, step):
        """The prime and `length` characters (a --lines model: one record at most) at `step`."""
        rng = np.random.default_rng([self.seed, STREAM, step])
        chunks = generate(self.model, self.prime, self.live.length, TEMPERATURE, 0, rng, "cpu", threads=1)
        return self.live.prime + "".join(chunks)
