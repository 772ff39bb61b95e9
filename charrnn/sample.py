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
from charrnn.threads import compute_threads
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


def generate(model, prime_ids, length, temperature=1.0, top_k=0, rng=None, device="cpu"):
    """Yield the generated text of one sample in chunks (str), without the prime.

    prime_ids (P,) token ids. Stops after `length` tokens or at EOS (which is not yielded).
    device: "cpu", "cuda" or "auto" (charrnn.device.resolve_device).
    """
    device = resolve_device(device)
    rng = np.random.default_rng() if rng is None else rng
    context = np.concatenate([np.array([EOS_ID], np.int64), np.asarray(prime_ids, np.int64)])
    draw = _device_sampler if device == "cuda" else _cpu_sampler
    with compute_threads():
        sample_chunk = draw(model.params, context[:-1])
        x = int(context[-1])
        done, chunk = 0, FIRST_CHUNK
        while done < length:
            out = sample_chunk(x, min(chunk, length - done), float(temperature), int(top_k), rng)
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


def _cpu_sampler(p, context):
    """Feed `context` from h = 0 on the CPU; return sample_chunk(x, n, temperature, top_k, rng) ->
    the drawn tokens (int64), up to n, ending at EOS if drawn."""
    Wxh, Whh, bh, Why, by = p["Wxh"], p["Whh"], p["bh"], p["Why"], p["by"]
    h = np.zeros(p.hidden, np.float32)  # (H,)
    cpu.rnn_advance(context, h, Wxh, Whh, bh, np.empty(p.hidden, np.float32))

    def sample_chunk(x, n, temperature, top_k, rng):
        out = np.empty(n, np.int64)
        n = cpu.sample_tokens(x, h, Wxh, Whh, bh, Why, by, temperature, top_k, EOS_ID, rng, out)
        return out[:n]

    return sample_chunk


def _device_sampler(p, context):
    """_cpu_sampler on the CUDA device: the state stays there; a chunk's tokens come back at its end."""
    from charrnn.cuda_backend import DeviceSampler

    sampler = DeviceSampler(p, max_chunk=MAX_CHUNK)
    sampler.reset()
    sampler.advance(context)

    def sample_chunk(x, n, temperature, top_k, rng):
        return sampler.sample(x, n, temperature, top_k, rng, stop_id=EOS_ID)

    return sample_chunk


def make_rng(seed=None):
    """The sampler's random generator: seeded for reproducible text, else fresh entropy."""
    if seed is not None and not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be a non-negative integer (got {seed})")
    return np.random.default_rng(seed)
