"""The CUDA backend, host side: device buffers, kernel launches, a device-resident training step,
device evaluation windows and a device sampler. Kernels live in charrnn.kernels.cuda.

Shape letters: T time steps, B streams, H hidden units, V vocabulary, N = T*B, P parameters.
Parameters, gradients and optimizer slots are each one flat float32 device buffer (P,) in the
layout of charrnn.params.FlatParams, so clipping and the optimizer are single passes. This version
runs the one-layer rnn cell only (check_supported); its five arrays go by their format-1 names
here (Wxh = weight_ih_l0 stored (V, H), Whh, bh, Why = weight_out, by = bias_out). The training ids are uploaded once (DeviceTrainer.upload_streams) and each window
is cut from them on the device (step_at): per training step only the window's start offset goes in
and the loss and gradient norm (two float64, one copy) come back.

Nothing here touches a GPU, or imports numba.cuda, until a function or class is used: importing
charrnn (or this module) stays cheap and works without numba-cuda or a driver.
"""

import math
import os

import numpy as np

from charrnn.errors import UsageError
from charrnn.params import Arch, FlatParams

THREADS = 256  # block size of the elementwise kernels
NORM_BLOCKS = 256  # most blocks of the first sum-of-squares stage


def _cuda():
    import warnings

    from numba import cuda

    # Small grids are by design here (one sampled stream, single-block reductions): numba-cuda's
    # low-occupancy warning would print for them on every run.
    warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
    return cuda


def _k():
    from charrnn.kernels import cuda as kernels

    return kernels


def cuda_status():
    """(usable, reason): whether CUDA training can run here, and a sentence saying why (not)."""
    import importlib.util

    if importlib.util.find_spec("numba_cuda") is None:  # numba's own numba.cuda is deprecated: not used
        return False, (
            "numba-cuda is not installed (pip install 'charrnn[cuda12]' or 'charrnn[cuda13]', "
            "to match the driver's CUDA version)"
        )
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0") and not _driver_loads():
        return False, "no CUDA driver was found (the NVIDIA driver's libcuda could not be loaded)"
    try:
        cuda = _cuda()
        if cuda.is_available():
            return True, "numba-cuda's CUDA simulator" if _simulated() else "a CUDA GPU was found"
        return False, "no CUDA GPU or driver was found (numba-cuda reports none)"
    except Exception as error:  # a broken driver or toolkit install
        return False, f"CUDA could not start: {error}"


def _driver_loads():
    """Whether the CUDA driver library loads, tried by the names and folders numba-cuda tries. It takes
    a millisecond where importing numba-cuda to ask it takes about 250 ms, so `--device auto` (the
    default) on a machine without a GPU driver costs nothing."""
    import ctypes
    import sys

    if sys.platform == "win32":
        load, names, folders = getattr(ctypes, "WinDLL", ctypes.CDLL), ["nvcuda.dll"], ["\\windows\\system32"]
    elif sys.platform == "darwin":
        load, names, folders = ctypes.CDLL, ["libcuda.dylib"], ["/usr/local/cuda/lib"]
    else:
        load, names, folders = ctypes.CDLL, ["libcuda.so", "libcuda.so.1"], ["/usr/lib", "/usr/lib64", "/usr/lib/wsl/lib"]
    for path in names + [os.path.join(folder, name) for folder in folders for name in names]:
        try:
            load(path)
            return True
        except OSError:
            continue
    return False


def cuda_available():
    """True when numba-cuda is installed and finds a GPU (or runs its simulator)."""
    return cuda_status()[0]


def _simulated():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def _zeros(shape, dtype=np.float32):
    return _cuda().to_device(np.zeros(shape, dtype))


def _blocks(n, per=THREADS):
    return max(1, (n + per - 1) // per)


def _tiled(rows, cols):
    """Launch shape of a (rows, cols) output computed in TILE x TILE blocks."""
    t = _k().TILE
    return (_blocks(cols, t), _blocks(rows, t)), (t, t)


def _pow2_threads(n):
    """Smallest power of two >= n, between MIN_THREADS (a warp) and REDUCE_THREADS."""
    nt = _k().MIN_THREADS
    while nt < n and nt < _k().REDUCE_THREADS:
        nt *= 2
    return nt


def check_supported(arch):
    """UsageError unless this version's CUDA kernels run the architecture (the one-layer rnn)."""
    if (arch.cell, arch.layers) != ("rnn", 1):
        raise UsageError(f"--device cuda runs one-layer rnn models in this version, not a {arch.layers}-layer {arch.cell}; "
                         "use --device cpu")  # fmt: skip


class DeviceParams:
    """A flat float32 device buffer (P,) with named views: WxhT (V, H) under "Wxh", Whh (H, H),
    bh (H,), Why (V, H), by (V,) — FlatParams' storage, so flat copies are exact both ways."""

    def __init__(self, hidden, vocab_size, flat=None):
        self.hidden, self.vocab_size = hidden, vocab_size
        H, V = hidden, vocab_size
        shapes = {"Wxh": (V, H), "Whh": (H, H), "bh": (H,), "Why": (V, H), "by": (V,)}  # FlatParams' order
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = _zeros(size) if flat is None else flat
        self.views, self.blocks, start = {}, {}, 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            self.blocks[name] = self.flat[start : start + n]  # flat (n,) view, for fills
            self.views[name] = self.blocks[name].reshape(shape)
            start += n

    @classmethod
    def from_host(cls, params):
        """Upload a FlatParams (any float dtype; the device keeps float32)."""
        check_supported(params.arch)
        flat = np.ascontiguousarray(params.flat, np.float32)
        return cls(params.hidden, params.vocab_size, _cuda().to_device(flat))

    def __getitem__(self, name):
        return self.views[name]

    def to_host(self, out=None):
        """Download into FlatParams `out` (float32) or a new one."""
        out = FlatParams(Arch("rnn", 1, self.hidden, self.vocab_size)) if out is None else out
        out.flat[...] = self.flat.copy_to_host()
        return out


class DeviceWorkspace:
    """Device buffers for windows of up to T steps over B streams, with per-step views made once
    (the host loop over time then only launches)."""

    def __init__(self, T, B, hidden, vocab_size):
        cuda, H, V, N = _cuda(), hidden, vocab_size, T * B
        if _blocks(N, _k().TILE) > 65535:  # the products over positions put N on the grid's y axis
            limit = 65535 * _k().TILE
            raise ValueError(f"a window of T*B = {N} positions is more than {limit}; lower --seq or --batch")
        self.T, self.B, self.H, self.V = T, B, H, V
        self.xy = _zeros((2, T, B), np.int32)  # input and target ids of the window
        self.xy_host = cuda.pinned_array((2, T, B), np.int32)  # staging buffer for the copy in
        self.hs = _zeros((T + 1, B, H))  # hs[0]: the carried state
        self.logits = _zeros((N, V))  # logits, then (in place) their gradient
        self.row_loss = _zeros(N, np.float64)
        self.dhs = _zeros((T, B, H))
        self.das = _zeros((T, B, H))
        self.dh = (_zeros((B, H)), _zeros((B, H)))  # ping-pong: dh of step t+1 in, of step t out
        self.stats = _zeros(2, np.float64)  # [loss, gradient norm]
        self.stats_host = cuda.pinned_array(2, np.float64)
        self.hs_t = [self.hs[t] for t in range(T + 1)]
        self.x_t = [self.xy[0, t] for t in range(T)]
        self.dhs_t = [self.dhs[t] for t in range(T)]
        self.das_t = [self.das[t] for t in range(T)]
        self.hs_flat = self.hs.reshape((T + 1) * B * H)

    def load(self, xs, ys):
        """Copy a window's ids xs, ys (t, B), t <= T, to the device (one transfer)."""
        t = xs.shape[0]
        self.xy_host[0, :t] = xs
        self.xy_host[1, :t] = ys
        self.xy.copy_to_device(self.xy_host)

    def set_h0(self, h0):
        """hs[0] <- h0 (B, H) from the host."""
        self.hs_t[0].copy_to_device(np.ascontiguousarray(h0, np.float32))

    def carry(self, t):
        """hs[0] <- hs[t]: the state after a window of t steps starts the next window."""
        self.hs_t[0].copy_to_device(self.hs_t[t])


def _forward(dp, ws, t):
    """hs[1..t] from hs[0] and the ids in ws.xy; returns (H_all (t*B, H), logits (t*B, V) = H_all @ Why.T).
    The output bias is added where the logits are consumed (softmax_xent)."""
    k, B, H, N = _k(), ws.B, ws.H, t * ws.B
    step = k.rnn_forward_step[_tiled(B, H)]
    Wxh, Whh, bh = dp["Wxh"], dp["Whh"], dp["bh"]
    for s in range(t):  # the recurrence: one launch per step
        step(ws.x_t[s], ws.hs_t[s], Wxh, Whh, bh, ws.hs_t[s + 1])
    h_all = ws.hs[1 : t + 1].reshape(N, H)
    logits = ws.logits[:N]
    k.matmul[_tiled(N, ws.V)](h_all, dp["Why"], logits, False, True)
    return h_all, logits


def loss_and_grads(dp, dg, ws):
    """Device mirror of charrnn.model.loss_and_grads over the whole workspace window (T, B).

    Inputs: dp (DeviceParams), ws.xy (ids), ws.hs[0] (h0). Writes dg (every gradient),
    ws.stats[LOSS] (mean loss), ws.hs (states; hs[T] is the last one). Launches only: no sync.
    """
    k, T, B, H, V = _k(), ws.T, ws.B, ws.H, ws.V
    N = T * B
    h_all, dlogits = _forward(dp, ws, T)
    ys = ws.xy[1].reshape(N)
    k.softmax_xent[N, _pow2_threads(V)](dlogits, dp["by"], ys, dlogits, ws.row_loss, np.float32(1.0 / N), True)
    k.finish_sum[1, k.REDUCE_THREADS](ws.row_loss, ws.stats, k.LOSS, 1.0 / N, False)

    k.matmul[_tiled(V, H)](dlogits, h_all, dg["Why"], True, False)  # dWhy (V, H) = dlogits.T @ H_all
    k.column_sums[_blocks(V, k.COLS), (k.COLS, k.ROWS)](dlogits, dg["by"])
    k.matmul[_tiled(N, H)](dlogits, dp["Why"], ws.dhs.reshape(N, H), False, False)  # dH = dlogits @ Why

    back = k.rnn_backward_step[_tiled(B, H)]
    dh_in, dh_out = ws.dh
    k.fill[_blocks(B * H), THREADS](dh_in.reshape(B * H), np.float32(0.0))
    for t in range(T - 1, -1, -1):
        back(ws.dhs_t[t], ws.hs_t[t + 1], dh_in, dp["Whh"], ws.das_t[t], dh_out)
        dh_in, dh_out = dh_out, dh_in

    das = ws.das.reshape(N, H)
    h_prev = ws.hs[:T].reshape(N, H)
    k.matmul[_tiled(H, H)](das, h_prev, dg["Whh"], True, False)  # dWhh = sum_t da_t h_{t-1}^T
    k.column_sums[_blocks(H, k.COLS), (k.COLS, k.ROWS)](das, dg["bh"])
    k.fill[_blocks(V * H), THREADS](dg.blocks["Wxh"], np.float32(0.0))
    k.embed_backward[_blocks(N * H), THREADS](ws.xy[0].reshape(N), das, dg["Wxh"])


def global_norm_clip(g, partials, stats, max_norm):
    """stats[NORM] = ||g|| (before clipping); g (P,) *= max_norm/||g|| when larger (max_norm 0: never).
    partials (G,) float32 sets the number of first-stage blocks. Launches only."""
    k = _k()
    k.sum_squares[partials.shape[0], k.REDUCE_THREADS](g, partials)
    k.finish_sum[1, k.REDUCE_THREADS](partials, stats, k.NORM, 1.0, True)
    k.clip_by_norm[_blocks(g.shape[0]), THREADS](g, stats, float(max_norm))


class DeviceOptimizer:
    """charrnn.optim.Optimizer on the device: the same slots (flat, like the parameters) and count."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, name, hidden, vocab_size):
        from charrnn.optim import SLOTS

        self.name = name
        self.slots = {slot: DeviceParams(hidden, vocab_size) for slot in SLOTS[name]}
        self.updates = 0

    def step(self, dp, dg, lr, stats):
        """One update of dp.flat from dg.flat; skipped on the device when stats holds inf/NaN."""
        k, p, g = _k(), dp.flat, dg.flat
        self.updates += 1
        launch = (_blocks(p.shape[0]), THREADS)
        if self.name == "adam":
            t = self.updates  # the bias corrections of cpu.adam_update, folded into two scalars
            c1, c2 = 1.0 - self.beta1**t, 1.0 - self.beta2**t
            alpha, eps_hat = lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
            m, v = self.slots["m"].flat, self.slots["v"].flat
            f = np.float32
            k.adam_update[launch](p, g, m, v, f(alpha), f(self.beta1), f(self.beta2), f(eps_hat), stats)
        elif self.name == "adagrad":
            k.adagrad_update[launch](p, g, self.slots["g2"].flat, np.float32(lr), np.float32(self.eps), stats)
        else:
            k.sgd_update[launch](p, g, np.float32(lr), stats)

    def load_from(self, opt):
        """Copy a host charrnn.optim.Optimizer's slots and update count (e.g. from a checkpoint)."""
        for slot, buf in self.slots.items():
            buf.flat.copy_to_device(np.ascontiguousarray(opt.slots[slot].flat, np.float32))
        self.updates = opt.updates

    def store_to(self, opt):
        """Copy slots and update count into a host Optimizer (for a checkpoint)."""
        for slot, buf in self.slots.items():
            buf.to_host(opt.slots[slot])
        opt.updates = self.updates


class DeviceTrainer:
    """Training windows on the device: parameters, gradients, optimizer slots, the carried hidden
    state and the workspace stay there between steps.

    params: FlatParams (uploaded); T, B: the window; optimizer: "adam" | "adagrad" | "sgd";
    clip: global-norm threshold (0: off); opt: a host Optimizer whose state to start from.
    """

    def __init__(self, params, T, B, optimizer="adam", clip=5.0, opt=None):
        H, V = params.hidden, params.vocab_size
        self.clip = float(clip)
        self.params = DeviceParams.from_host(params)
        self.grads = DeviceParams(H, V)
        self.opt = DeviceOptimizer(optimizer, H, V)
        if opt is not None:
            self.opt.load_from(opt)
        self.ws = DeviceWorkspace(T, B, H, V)
        per_block = 8 * _k().REDUCE_THREADS  # a few grid-stride loads per thread before the tree
        self.partials = _zeros(min(NORM_BLOCKS, _blocks(self.params.flat.shape[0], per_block)))
        self.last_norm = None

    def upload_streams(self, streams):
        """Keep the training ids on the device for the whole run: streams is the (B, L+1) stream
        view (charrnn.batches.stream_view) of a contiguous id array; windows are then cut on the
        device by step_at, and no ids cross per step."""
        B, L = streams.shape[0], streams.shape[1] - 1
        assert B == self.ws.B and streams.strides[1] == streams.itemsize
        flat = np.lib.stride_tricks.as_strided(streams, shape=(B * L + 1,), strides=(streams.strides[1],))
        self.stream_ids = _cuda().to_device(flat.astype(np.int32))
        self.stream_len = L

    def step_at(self, start, lr):
        """step() on the window at step `start` of the uploaded streams (see upload_streams)."""
        ws = self.ws
        grid = (_blocks(ws.B, _k().TILE), _blocks(ws.T, _k().TILE)), (_k().TILE, _k().TILE)
        _k().gather_window[grid](self.stream_ids, self.stream_len, start, ws.xy)
        return self._update(lr)

    def step(self, xs, ys, lr):
        """One window: loss and gradients from the carried state, clipping, one optimizer update,
        then the window's last state is carried. xs, ys (T, B) ids on the host. Returns the mean
        loss (float); the gradient norm before clipping is in self.last_norm. When either is inf/NaN
        the update was skipped on the device (the parameters are the last good ones)."""
        self.ws.load(xs, ys)
        return self._update(lr)

    def _update(self, lr):
        ws = self.ws
        loss_and_grads(self.params, self.grads, ws)
        global_norm_clip(self.grads.flat, self.partials, ws.stats, self.clip)
        self.opt.step(self.params, self.grads, lr, ws.stats)
        ws.carry(ws.T)
        stats = ws.stats.copy_to_host(ws.stats_host)  # the one synchronisation of the step
        self.last_norm = float(stats[1])
        return float(stats[0])

    @property
    def hidden_state(self):
        """The state (B, H) the next window starts from (a host copy)."""
        return self.ws.hs_t[0].copy_to_host()

    @hidden_state.setter
    def hidden_state(self, h):
        self.ws.set_h0(h)

    def reset_hidden(self):
        """Zero the carried state (every epoch starts from h = 0)."""
        k, ws = _k(), self.ws
        n = ws.B * ws.H
        k.fill[_blocks(n), THREADS](ws.hs_flat[:n], np.float32(0.0))

    def params_to_host(self, out=None):
        """The parameters as FlatParams (into `out` when given)."""
        return self.params.to_host(out)

    def optimizer_to_host(self, opt):
        """Write the optimizer slots and update count into host Optimizer `opt` (for checkpoints)."""
        self.opt.store_to(opt)


def forward_loss_sum(dp, ws, xs, ys):
    """Device mirror of charrnn.model.forward_loss_sum: the summed cross-entropy of a window
    xs, ys (t, B), t <= ws.T, from the state in ws.hs[0]; afterwards hs[0] holds the window's last
    state, so consecutive calls carry it (zero it with ws.set_h0 to start a stream). Returns a float."""
    k, t = _k(), xs.shape[0]
    N = t * ws.B
    ws.load(xs, ys)
    _, logits = _forward(dp, ws, t)
    ys_dev = ws.xy[1, :t].reshape(N)
    k.softmax_xent[N, _pow2_threads(ws.V)](logits, dp["by"], ys_dev, logits, ws.row_loss[:N], np.float32(0.0), False)
    k.finish_sum[1, k.REDUCE_THREADS](ws.row_loss[:N], ws.stats, k.LOSS, 1.0, False)
    ws.carry(t)
    return float(ws.stats.copy_to_host(ws.stats_host)[0])


def device_loss_and_grads(params, xs, ys, h0):
    """charrnn.model.loss_and_grads computed on the device, for tests and checks.

    params: FlatParams; xs, ys (T, B) ids; h0 (B, H). Returns (loss, {name: gradient shaped like
    the checkpoint arrays}, h_last (B, H)).
    """
    T, B = xs.shape
    dp = DeviceParams.from_host(params)
    dg = DeviceParams(params.hidden, params.vocab_size)
    ws = DeviceWorkspace(T, B, params.hidden, params.vocab_size)
    ws.load(xs, ys)
    ws.set_h0(h0)
    loss_and_grads(dp, dg, ws)
    loss = float(ws.stats.copy_to_host()[0])
    return loss, dg.to_host().as_dict(), ws.hs_t[T].copy_to_host()


class DeviceSampler:
    """One stream generating on the device, as cpu.rnn_advance + cpu.sample_tokens.

    Uniform numbers come from the caller's numpy Generator on the host (rng.random(n) per chunk,
    one per drawn token, uploaded once per chunk), and exactly as many are consumed as the CPU
    sampler would, so a seed gives the same text on both up to float rounding at near-ties.
    """

    def __init__(self, params, max_chunk=4096):
        cuda, H, V = _cuda(), params.hidden, params.vocab_size
        self.params = DeviceParams.from_host(params)
        self.H, self.max_chunk = H, max_chunk
        self.h = [_zeros((1, H)), _zeros((1, H))]  # ping-pong: h[self.cur] is the current state
        self.cur = 0
        self.h_start = _zeros((1, H))
        self.logits = _zeros((1, V))
        self.work, self.spare = _zeros(V), _zeros(2 * V)  # spare: two (V,) halves for the top-p cut
        self.allowed = {}  # draw.eos -> the (V,) bool allowed tokens (decided by it alone), on the device
        self.tokens = _zeros(max_chunk + 1, np.int32)  # tokens[0] the input, tokens[i + 1] drawn at step i
        self.uniforms = _zeros(max_chunk, np.float64)
        self.ids_host = cuda.pinned_array(max_chunk + 1, np.int32)

    def reset(self):
        """h = 0 (every sample starts there)."""
        self.h[self.cur].copy_to_device(np.zeros((1, self.H), np.float32))

    @property
    def hidden_state(self):
        return self.h[self.cur].copy_to_host()[0]

    def _run(self, n, draw=None):
        """Feed tokens[0..n-1] through the recurrence; with a draw rule (charrnn.sample.Draw) each
        step also draws tokens[i + 1] from the new state (so tokens[i + 1] is known before step i + 1)."""
        k, dp = _k(), self.params
        step = k.rnn_forward_step[_tiled(1, self.H)]
        out = k.matmul[_tiled(1, dp.vocab_size)]
        pick = k.draw_token[1, _pow2_threads(dp.vocab_size)]
        if draw is not None:
            allowed = self._allowed(draw)
            rule = (int(draw.no_repeat), np.float32(draw.temperature), int(draw.top_k), float(draw.top_p))
        for i in range(n):
            h, h_next = self.h[self.cur], self.h[1 - self.cur]
            step(self.tokens[i : i + 1], h, dp["Wxh"], dp["Whh"], dp["bh"], h_next)
            self.cur = 1 - self.cur
            if draw is not None:
                out(h_next, dp["Why"], self.logits, False, True)
                pick(self.logits, dp["by"], allowed, *rule, self.uniforms, i, self.work, self.spare, self.tokens)

    def _allowed(self, draw):
        if draw.eos not in self.allowed:
            self.allowed[draw.eos] = _cuda().to_device(draw.allowed(self.params.vocab_size))
        return self.allowed[draw.eos]

    def _upload(self, ids):
        self.ids_host[: len(ids)] = ids
        self.tokens.copy_to_device(self.ids_host)

    def advance(self, ids):
        """Feed ids (N,) through the recurrence from the current state."""
        ids = np.asarray(ids)
        for start in range(0, len(ids), self.max_chunk):
            chunk = ids[start : start + self.max_chunk]
            self._upload(chunk)
            self._run(len(chunk))

    def sample(self, x, n, draw, rng):
        """Generate up to n <= max_chunk tokens from input token x by the rule `draw`
        (charrnn.sample.Draw), stopping after draw.stop_id. Returns them (int64); the state and the
        random numbers used are then as after CpuSampler.sample."""
        assert 0 < n <= self.max_chunk
        self._upload([x])
        state = rng.bit_generator.state
        if draw.temperature != 0.0:
            self.uniforms[:n].copy_to_device(rng.random(n))
        self.h_start.copy_to_device(self.h[self.cur])
        self._run(n, draw)
        out = self.tokens[1 : n + 1].copy_to_host().astype(np.int64)
        stop_id = draw.stop_id
        stops = np.flatnonzero(out == stop_id) if stop_id >= 0 else ()
        if len(stops) and stops[0] + 1 < n:  # stopped early: give back the unused state and draws
            m = int(stops[0]) + 1
            if draw.temperature != 0.0:
                rng.bit_generator.state = state
                rng.random(m)
            self.h[self.cur].copy_to_device(self.h_start)
            self._run(m)  # tokens[0..m-1] are still the fed inputs
            return out[:m]
        return out
