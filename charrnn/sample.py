"""Text generation: prime the model, then draw tokens, streamed in chunks.

What a sample is (`until_eos`, by default the checkpoint's `lines` setting):
  * a record (until_eos): the text until the model draws <eos>, or `length` characters if that
    comes first. A model trained with --lines makes records: each one is a line of its kind.
  * a stream (not until_eos): exactly `length` characters. In a model trained on whole files
    <eos> means "the end of a file", and it is never drawn; in a --lines model it is the end of a
    line, and it is drawn and written as a newline, so a stream is a run of records, one per line.
<unk> is never drawn. How each token is drawn (temperature, top-k, top-p): charrnn.kernels.draw.
`stop` strings end a sample right after the first of them to appear in its generated text.

Every sample starts from h = 0 with the EOS token as input (the context that precedes every
record in training), then the prime. On device="cuda" the same steps run on the GPU
(charrnn.sample_cuda.DeviceSampler), drawing the same random numbers from `rng`, so a seed gives
the same text up to float rounding at near-ties.
"""

from dataclasses import dataclass

import numpy as np

from charrnn.device import resolve_device
from charrnn.errors import CheckpointError, UsageError
from charrnn.parallel import SpinHelper, available_cores
from charrnn.vocab import EOS_ID, UNK_ID, text_to_codepoints

FIRST_CHUNK, MAX_CHUNK = 64, 4096  # tokens per compiled call: small first for latency, then larger

# What <eos> does in a sample: never drawn (a stream from a model of whole files), drawn and ends
# the sample (a record), or drawn and written as a newline (a stream from a --lines model).
EOS_BANNED, EOS_ENDS, EOS_NEWLINE = "banned", "ends", "newline"


@dataclass(frozen=True)
class Draw:
    """How each token is drawn: the rule of charrnn.kernels.draw, with what <eos> does."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    eos: str = EOS_BANNED

    def __post_init__(self):
        if not 0 <= self.temperature <= 100:
            raise UsageError(f"--temperature must be a number from 0 to 100 (got {self.temperature}); 0 picks the most likely character")
        if not self.top_k >= 0:
            raise UsageError(f"--top-k must be a non-negative integer (got {self.top_k}); 0 keeps every character")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be a number above 0 and at most 1 (got {self.top_p}); 1 keeps every character")
        if self.eos not in (EOS_BANNED, EOS_ENDS, EOS_NEWLINE):
            raise ValueError(f"eos must be {EOS_BANNED!r}, {EOS_ENDS!r} or {EOS_NEWLINE!r}, not {self.eos!r}")

    def allowed(self, V):
        """(V,) bool: the tokens that may be drawn. Never <unk>; <eos> unless it is banned."""
        allowed = np.ones(V, np.bool_)
        allowed[UNK_ID] = False
        allowed[EOS_ID] = self.eos != EOS_BANNED
        return allowed

    @property
    def stop_id(self):
        """The token that ends a sample when drawn (-1: none)."""
        return EOS_ID if self.eos == EOS_ENDS else -1

    @property
    def no_repeat(self):
        """The token not drawn right after itself (-1: none): <eos>, as records are never empty."""
        return -1 if self.eos == EOS_BANNED else EOS_ID


def eos_rule(lines, until_eos=None):
    """What <eos> does in a sample of a model trained with or without --lines (until_eos None: records for --lines models, a stream otherwise)."""
    records = lines if until_eos is None else until_eos
    if records:
        return EOS_ENDS
    return EOS_NEWLINE if lines else EOS_BANNED


def check_sampling_args(length, num_samples):
    if not length >= 0:
        raise UsageError(f"--length must be a non-negative integer (got {length})")
    if not num_samples >= 1:
        raise UsageError(f"--num-samples must be at least 1 (got {num_samples})")


def check_samplable(model, name=None):
    """CheckpointError when the model has no character it may draw (a vocabulary of only <unk> and <eos>)."""
    if not Draw(eos=EOS_BANNED).allowed(model.vocab.size).any():
        where = f"{name}: " if name else ""
        raise CheckpointError(f"{where}the model has no characters to sample: its vocabulary holds only <unk> and <eos>")


def encode_prime(vocab, text, lines=False):
    """(ids (P,), unknown characters as a str) of a prime. In a --lines model a newline ends a
    record, as in its training: it becomes <eos>."""
    ids, unknown = vocab.encode_text(text)
    if lines and "\n" in text:
        ids[text_to_codepoints(text) == ord("\n")] = EOS_ID
        unknown = unknown.replace("\n", "")
    return ids, unknown


def generate(model, prime_ids, length, temperature=1.0, top_k=0, rng=None, device="cpu", threads=None, *,
             top_p=1.0, until_eos=None, stop=()):  # fmt: skip
    """Yield the generated text of one sample in chunks (str), without the prime.

    prime_ids (P,) token ids. A record (until_eos) ends at <eos> (not yielded) or after `length`
    characters, a stream after exactly `length`; either ends early right after the first of the
    `stop` strings to appear. until_eos None: the model's default (records for --lines models).
    device: "cpu", "cuda" or "auto" (charrnn.device.resolve_device).
    threads: CPU threads per step, 1 or 2 (None: 2 when the model is large enough to gain and
    there are 2 cores). The text is the same either way.
    """
    draw = Draw(float(temperature), int(top_k), float(top_p), eos_rule(model.lines, until_eos))
    check_samplable(model)
    device = resolve_device(device)
    rng = np.random.default_rng() if rng is None else rng
    newline = "\n" if draw.eos == EOS_NEWLINE else None
    scan = StopScan(stop)
    context = np.concatenate([np.array([EOS_ID], np.int64), np.asarray(prime_ids, np.int64)])
    if device == "cuda":
        sampler = _DeviceSampler(model.params, context[:-1])
    else:
        sampler = CpuSampler(model.params, context[:-1], threads)
    with sampler:
        x = int(context[-1])
        done, chunk = 0, FIRST_CHUNK
        while done < length:
            out = sampler.sample(x, min(chunk, length - done), draw, rng)
            n = len(out)
            ended = out[n - 1] == draw.stop_id
            text, stopped = scan.cut(model.vocab.decode(out[: n - 1] if ended else out, eos=newline))
            if text:
                yield text
            if ended or stopped:
                return
            done += n
            x = int(out[n - 1])
            chunk = min(2 * chunk, MAX_CHUNK)


class StopScan:
    """Where a sample that arrives in chunks ends: right after the first of the stop strings to
    appear in it (the earliest to be complete). A match may span chunks."""

    def __init__(self, stops=()):
        self.stops = tuple(stops)
        if not all(self.stops):
            raise UsageError("--stop must not be empty")
        self.keep = max(map(len, self.stops), default=1) - 1  # characters of a partial match to carry over
        self.tail = ""

    def cut(self, text):
        """(the part of the next chunk `text` that belongs to the sample, whether the sample ends there)."""
        if not self.stops:
            return text, False
        seen = self.tail + text
        ends = [i + len(s) for s in self.stops if (i := seen.find(s)) >= 0]
        if ends:  # a match within the carried tail alone would have ended an earlier chunk
            return text[: min(ends) - len(self.tail)], True
        self.tail = seen[max(0, len(seen) - self.keep) :] if self.keep else ""
        return text, False


def sample_rngs(seed=None):
    """An endless supply of random generators, one per sample: the i-th sample of a seed is then the
    same whatever the samples before it drew (their lengths, stops). seed None: fresh entropy."""
    if seed is not None and not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be a non-negative integer (got {seed})")
    return _spawned(np.random.SeedSequence(seed))


def _spawned(seeds):
    while True:
        yield np.random.default_rng(seeds.spawn(1)[0])


HELPER_MIN_HIDDEN = 256  # below this a step's product takes too little time for a second thread to pay
# The helper thread starts once this many tokens are drawn: starting it (and loading its kernel) takes
# about 12 ms, more than 448 tokens cost on one thread at H = 512; a short sample never needs it.
HELPER_AFTER = FIRST_CHUNK * 7


class CpuSampler:
    """Feeds the context from a zero state, then draws chunks of tokens (charrnn.kernels.sampling,
    for any cell and layer count); with 2 threads a helper thread computes part of every product
    (matvec_helper), from the HELPER_AFTER-th token on. The tokens are the same with one thread or two."""

    def __init__(self, p, context, threads=None, helper_after=None):
        from charrnn.cells.modules import cpu_module
        from charrnn.kernels import sampling
        from charrnn.kernels.packed import VECTOR_GROUP, aligned_zeros, panels_of

        self.p, arch = p, p.arch
        L, H, GH = arch.layers, arch.hidden, arch.gates * arch.hidden
        self.loops = sampling.loops(cpu_module(arch.cell).step)  # advance, sample_tokens around the cell's step
        # Layer l's product: [weight_hh_l; weight_ih_l+1] or, last, [weight_hh_l; weight_out] (sampling.py).
        stacks = [np.concatenate((p[f"weight_hh_l{l}"], p[f"weight_ih_l{l + 1}"] if l + 1 < L else p["weight_out"])) for l in range(L)]
        packed = [panels_of(np.ascontiguousarray(m, np.float32), VECTOR_GROUP) for m in stacks]
        self.panels = aligned_zeros((sum(map(len, packed)), H, packed[0].shape[2]), np.float32)  # (groups, H, width)
        np.concatenate(packed, out=self.panels)
        self.goff = np.cumsum([0] + [len(q) for q in packed]).astype(np.int64)  # (L+1,) each layer's first group
        def aligned(a):  # the sampler's own copies, on cache-line boundaries (aligned_zeros)
            out = aligned_zeros(np.shape(a), np.float32)
            out[...] = a
            return out

        self.W0 = aligned(p.stored("weight_ih_l0"))  # (V, G*H)
        self.bih = aligned([p[f"bias_ih_l{l}"] for l in range(L)])  # (L, G*H)
        self.bhh = aligned([p.views.get(f"bias_hh_l{l}", np.zeros(GH)) for l in range(L)])  # (L, G*H), zeros without bias_hh
        self.bout = aligned(p["bias_out"])
        self.state = aligned_zeros((L, arch.states, H), np.float32)  # (L, S, H)
        # (1, columns): every layer's product at its groups' columns; it ends at the head's last row,
        # so that the last group's padding is not computed
        self.u = aligned_zeros((1, int(self.goff[L - 1]) * self.panels.shape[2] + len(stacks[-1])), np.float32)
        self.scratch = aligned_zeros(GH + H, np.float32)  # the cell's step's
        self.sampling = sampling
        self.loops.advance(np.asarray(context, np.int64), self.state, self.W0, self.bih, self.bhh, self.panels, self.goff, self.u, self.scratch)
        if threads is None:
            threads = 2 if H >= HELPER_MIN_HIDDEN and available_cores() >= 2 else 1
        halves = [a + (b - a) // 2 if threads > 1 and b - a >= 2 else b for a, b in zip(self.goff[:-1], self.goff[1:])]
        self.splits = np.array(halves, np.int64)  # (L,) each product's first group for the helper
        self.helped = bool((self.splits < self.goff[1:]).any())
        self.helper, self.drawn = None, 0
        self.helper_after = HELPER_AFTER if helper_after is None else helper_after

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.helper is not None:
            self.helper.close()

    def sample(self, x, n, draw, rng):
        """Up to n drawn tokens (int64) after input token x by the rule `draw` (a Draw), ending at
        draw.stop_id if drawn. One rng.random() per token (none at temperature 0)."""
        s, out = self.sampling, np.empty(n, np.int64)
        rule = (draw.allowed(self.p.vocab_size), draw.no_repeat, draw.temperature, draw.top_k, draw.top_p, draw.stop_id)
        args = (x, self.state, self.W0, self.bih, self.bhh, self.bout, self.panels, self.goff)
        if self.helper is None and self.helped and self.drawn >= self.helper_after:
            self.helper = SpinHelper(s.GO, s.STOP)
        if self.helper is None:
            n = self.loops.sample_tokens(*args, self.goff[1:], *rule, rng, out, self.u, self.scratch, np.zeros(32, np.int64), False)
        else:
            with self.helper.running(s.matvec_helper, self.state, self.panels, self.goff, self.splits, self.u) as flags:
                n = self.loops.sample_tokens(*args, self.splits, *rule, rng, out, self.u, self.scratch, flags, True)
        self.drawn += n
        return out[:n]


class _DeviceSampler:
    """CpuSampler's interface for charrnn.sample_cuda.DeviceSampler: the state stays there; a chunk's tokens come back at its end."""

    def __init__(self, p, context):
        from charrnn.sample_cuda import DeviceSampler

        self.sampler = DeviceSampler(p, max_chunk=MAX_CHUNK)
        self.sampler.reset()
        self.sampler.advance(context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def sample(self, x, n, draw, rng):
        return self.sampler.sample(x, n, draw, rng)
