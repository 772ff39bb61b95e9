"""Text generation: prime the model, then draw tokens with temperature and top-k, streamed in chunks.

Every sample starts from h = 0 with the EOS token as input (the context that precedes every
record in training), then the prime text, then generated tokens until `length` tokens or EOS.
On device="cuda" the same steps run on the GPU (charrnn.cuda_backend.DeviceSampler), drawing the
same random numbers from `rng`, so a seed gives the same text up to float rounding at near-ties.
"""

import numpy as np

from charrnn.device import resolve_device
from charrnn.errors import UsageError
from charrnn.kernels import cpu
from charrnn.parallel import SpinHelper, available_cores
from charrnn.vocab import EOS_ID

FIRST_CHUNK, MAX_CHUNK = 64, 4096  # tokens per compiled call: small first for latency, then larger


def check_sampling_args(length, temperature, top_k, num_samples):
    if not length >= 0:
        raise UsageError(f"--length must be a non-negative integer (got {length})")
    if not 0 <= temperature <= 100:
        raise UsageError(f"--temperature must be a number from 0 to 100 (got {temperature}); 0 picks the most likely character")
    if not top_k >= 0:
        raise UsageError(f"--top-k must be a non-negative integer (got {top_k}); 0 keeps every character")
    if not num_samples >= 1:
        raise UsageError(f"--num-samples must be at least 1 (got {num_samples})")


def generate(model, prime_ids, length, temperature=1.0, top_k=0, rng=None, device="cpu", threads=None):
    """Yield the generated text of one sample in chunks (str), without the prime.

    prime_ids (P,) token ids. Stops after `length` tokens or at EOS (which is not yielded).
    device: "cpu", "cuda" or "auto" (charrnn.device.resolve_device).
    threads: CPU threads per step, 1 or 2 (None: 2 when the model is large enough to gain and
    there are 2 cores). The text is the same either way.
    """
    device = resolve_device(device)
    rng = np.random.default_rng() if rng is None else rng
    context = np.concatenate([np.array([EOS_ID], np.int64), np.asarray(prime_ids, np.int64)])
    if device == "cuda":
        sampler = _DeviceSampler(model.params, context[:-1])
    else:
        sampler = CpuSampler(model.params, context[:-1], threads)
    with sampler:
        x = int(context[-1])
        done, chunk = 0, FIRST_CHUNK
        while done < length:
            out = sampler.sample(x, min(chunk, length - done), float(temperature), int(top_k), rng)
            n = len(out)
            ended = out[n - 1] == EOS_ID
            text = model.vocab.decode(out[: n - 1] if ended else out[:n])
            if text:
                yield text
            if ended:
                return
            done += n
            x = int(out[n - 1])
            chunk = min(2 * chunk, MAX_CHUNK)


HELPER_MIN_HIDDEN = 256  # below this a step's product takes too little time for a second thread to pay


class CpuSampler:
    """Feeds the context from h = 0, then draws chunks of tokens (cpu.sample_tokens); with 2 threads
    a helper thread computes part of every step's matrix-vector product (cpu.matvec_helper)."""

    def __init__(self, p, context, threads=None):
        self.p, H, V = p, p.hidden, p.vocab_size
        self.panels = cpu.sampler_panels(p["Whh"], p["Why"])  # (H+V, H) packed once
        self.h = np.zeros(H, np.float32)  # (H,)
        self.u = np.empty((1, H + V), np.float32)  # (1, H+V) = [Whh; Why] h
        cpu.rnn_advance(context, self.h, p["Wxh"], self.panels, p["bh"], self.u)
        if threads is None:
            threads = 2 if H >= HELPER_MIN_HIDDEN and available_cores() >= 2 else 1
        groups = self.panels.shape[0]
        self.split = groups if threads == 1 or groups < 2 else groups // 2  # groups before split: this thread
        self.helper = SpinHelper(cpu.GO, cpu.STOP) if self.split < groups else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.helper is not None:
            self.helper.close()

    def sample(self, x, n, temperature, top_k, rng, stop_id=EOS_ID):
        """Up to n drawn tokens (int64) after input token x, ending at stop_id if drawn (-1: never)."""
        p, out = self.p, np.empty(n, np.int64)
        args = (x, self.h, p["Wxh"], self.panels, p["bh"], p["by"], temperature, top_k, stop_id, rng, out, self.u)
        if self.helper is None:
            n = cpu.sample_tokens(*args, np.zeros(32, np.int64), self.split)
        else:
            with self.helper.running(cpu.matvec_helper, self.h, self.panels, self.u, self.split) as flags:
                n = cpu.sample_tokens(*args, flags, self.split)
        return out[:n]


class _DeviceSampler:
    """CpuSampler's interface for charrnn.cuda_backend.DeviceSampler: the state stays there; a chunk's tokens come back at its end."""

    def __init__(self, p, context):
        from charrnn.cuda_backend import DeviceSampler

        self.sampler = DeviceSampler(p, max_chunk=MAX_CHUNK)
        self.sampler.reset()
        self.sampler.advance(context)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def sample(self, x, n, temperature, top_k, rng):
        return self.sampler.sample(x, n, temperature, top_k, rng, stop_id=EOS_ID)


def make_rng(seed=None):
    """The sampler's random generator: seeded for reproducible text, else fresh entropy."""
    if seed is not None and not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be a non-negative integer (got {seed})")
    return np.random.default_rng(seed)
