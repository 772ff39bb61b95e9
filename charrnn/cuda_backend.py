"""The CUDA backend, host side: device parameters, the optimizer, a device-resident training step
and device evaluation windows, for every cell and layer count. Built on it: the device sampler
(charrnn.sample_cuda). The network's launches and its workspace are in charrnn.network_cuda; kernels
in charrnn.kernels.cuda* and charrnn/cells/<name>/cuda.py; whether CUDA can run here at all is
charrnn.cuda_probe's question.

Shape letters: T time steps, B streams, H hidden units, V vocabulary, G gates, L layers, S states
per layer, N = T*B, P parameters. Parameters, gradients and optimizer slots are each one flat
float32 device buffer (P,) in the layout of charrnn.params.FlatParams, so flat copies are exact
both ways and clipping and the optimizer are single passes. The carried state is (L, S, B, H), as
on the CPU. The training ids are uploaded once (DeviceTrainer.upload_streams) and each window is
cut from them on the device (step_at): per training step only the window's start offset goes in
and the loss and gradient norm (two float64, one copy) come back.

Nothing here imports numba.cuda or touches a GPU until a function or class is used (through _cuda,
_k and _net), so importing this module needs neither numba-cuda nor a driver. charrnn.sample_cuda
builds on DeviceParams; nothing here imports it, so the two import in one direction only.
"""

import math

import numpy as np

from charrnn.params import FlatParams, layout

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


def _net():
    from charrnn import network_cuda

    return network_cuda


class DeviceParams:
    """A flat float32 device buffer (P,) with named views in FlatParams' layout: dp[name] is the
    parameter as stored (weight_ih_l0 (V, G*H), every other one in PyTorch's shape), dp.blocks[name]
    its flat (n,) view (for fills)."""

    def __init__(self, arch, flat=None):
        self.arch = arch
        shapes = layout(arch)
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = _k().zeros(size) if flat is None else flat
        assert self.flat.shape == (size,)
        self.views, self.blocks, start = {}, {}, 0
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            self.blocks[name] = self.flat[start : start + n]
            self.views[name] = self.blocks[name].reshape(shape[::-1] if name == "weight_ih_l0" else shape)
            start += n

    hidden = property(lambda self: self.arch.hidden)
    vocab_size = property(lambda self: self.arch.vocab_size)

    @classmethod
    def from_host(cls, params):
        """Upload a FlatParams (any float dtype; the device keeps float32)."""
        return cls(params.arch, _cuda().to_device(np.ascontiguousarray(params.flat, np.float32)))

    def __getitem__(self, name):
        return self.views[name]

    def to_host(self, out=None):
        """Download into FlatParams `out` (float32) or a new one."""
        out = FlatParams(self.arch) if out is None else out
        out.flat[...] = self.flat.copy_to_host()
        return out


def global_norm_clip(g, partials, stats, max_norm):
    """stats[NORM] = ||g|| (before clipping); g (P,) *= max_norm/||g|| when larger (max_norm 0: never).
    partials (n,) float32 sets the number of first-stage blocks. Launches only."""
    from charrnn.kernels import cuda_optim

    k = _k()
    k.sum_squares[partials.shape[0], k.REDUCE_THREADS](g, partials)
    k.finish_sum[1, k.REDUCE_THREADS](partials, stats, k.NORM, 1.0, True)
    cuda_optim.clip_by_norm[k.flat(g.shape[0])](g, stats, float(max_norm))


class DeviceOptimizer:
    """charrnn.optim.Optimizer on the device: the same slots (flat, like the parameters), update
    count and decoupled weight decay (on weights only: FlatParams.decay_mask, uploaded once)."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, name, arch, weight_decay=0.0):
        from charrnn.optim import SLOTS

        self.name, self.weight_decay = name, float(weight_decay)
        self.slots = {slot: DeviceParams(arch) for slot in SLOTS[name]}
        self.mask = _cuda().to_device(FlatParams(arch).decay_mask()) if weight_decay else None
        self.updates = 0

    def step(self, dp, dg, lr, stats):
        """One update of dp.flat from dg.flat; skipped on the device when stats holds inf/NaN."""
        from charrnn.kernels import cuda_optim as k

        p, g, f = dp.flat, dg.flat, np.float32
        self.updates += 1
        launch = _k().flat(p.shape[0])
        if self.weight_decay:  # before the update, as charrnn.optim
            k.decay_weights[launch](p, self.mask, f(lr * self.weight_decay), stats)
        if self.name == "adam":
            t = self.updates  # the bias corrections of cpu.adam_update, folded into two scalars
            c1, c2 = 1.0 - self.beta1**t, 1.0 - self.beta2**t
            alpha, eps_hat = lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
            m, v = self.slots["m"].flat, self.slots["v"].flat
            k.adam_update[launch](p, g, m, v, f(alpha), f(self.beta1), f(self.beta2), f(eps_hat), stats)
        elif self.name == "adagrad":
            k.adagrad_update[launch](p, g, self.slots["g2"].flat, f(lr), f(self.eps), stats)
        else:
            k.sgd_update[launch](p, g, f(lr), stats)

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
    """Training windows on the device: parameters, gradients, optimizer slots, the carried state
    (L, S, B, H) and the workspace stay there between steps.

    params: FlatParams (uploaded); T, B: the window; optimizer: "adam" | "adagrad" | "sgd";
    clip: global-norm threshold (0: off); opt: a host Optimizer whose state to start from;
    weight_decay: decoupled, as charrnn.optim.
    """

    def __init__(self, params, T, B, optimizer="adam", clip=5.0, opt=None, weight_decay=0.0):
        self.clip = float(clip)
        self.params = DeviceParams.from_host(params)
        self.grads = DeviceParams(params.arch)
        self.opt = DeviceOptimizer(optimizer, params.arch, weight_decay)
        if opt is not None:
            self.opt.load_from(opt)
        self.ws = _net().DeviceWorkspace(params.arch, T, B)
        per_block = 8 * _k().REDUCE_THREADS  # a few grid-stride loads per thread before the tree
        self.partials = _k().zeros(min(NORM_BLOCKS, _k().blocks(self.params.flat.shape[0], per_block)))
        self.last_norm = None

    def upload_streams(self, streams):
        """Keep the training ids on the device for the whole run: streams is the (B, L+1) stream
        view (charrnn.batches.split_rows) of a contiguous id array, its rows `stride` ids apart;
        windows are then cut on the device by step_at, and no ids cross per step."""
        B, L = streams.shape[0], streams.shape[1] - 1
        assert B == self.ws.B and streams.strides[1] == streams.itemsize
        stride = streams.strides[0] // streams.itemsize
        flat = np.lib.stride_tricks.as_strided(streams, shape=((B - 1) * stride + L + 1,), strides=(streams.itemsize,))
        self.stream_ids = _cuda().to_device(flat.astype(np.int32))
        self.stream_stride = stride

    def step_at(self, start, lr, dropout=None):
        """step() on the window at step `start` of the uploaded streams (see upload_streams)."""
        k, ws = _k(), self.ws
        grid = (k.blocks(ws.B, k.TILE), k.blocks(ws.T, k.TILE)), (k.TILE, k.TILE)
        k.gather_window[grid](self.stream_ids, self.stream_stride, start, ws.xy)
        return self._update(lr, dropout)

    def step(self, xs, ys, lr, dropout=None):
        """One window: loss and gradients from the carried state, clipping, one optimizer update,
        then the window's last state is carried. xs, ys (T, B) ids on the host; dropout a
        charrnn.network.Dropout or None. Returns the mean loss (float); the gradient norm before
        clipping is in self.last_norm. When either is inf/NaN the update was skipped on the device
        (the parameters are the last good ones)."""
        self.ws.load(xs, ys)
        return self._update(lr, dropout)

    def _update(self, lr, dropout):
        ws = self.ws
        _net().loss_and_grads(self.params, self.grads, ws, ws.state_v, dropout)  # carries ws.state in place
        global_norm_clip(self.grads.flat, self.partials, ws.stats, self.clip)
        self.opt.step(self.params, self.grads, lr, ws.stats)
        stats = ws.stats.copy_to_host(ws.stats_host)  # the one synchronisation of the step
        self.last_norm = float(stats[1])
        return float(stats[0])

    @property
    def hidden_state(self):
        """The state (L, S, B, H) the next window starts from (a host copy)."""
        return self.ws.state.copy_to_host()

    @hidden_state.setter
    def hidden_state(self, state):
        self.ws.state.copy_to_device(np.ascontiguousarray(state, np.float32))

    def reset_hidden(self):
        """Zero the carried state (every epoch starts from it)."""
        k, state = _k(), self.ws.state
        k.fill[k.flat(state.size)](state.reshape(state.size), np.float32(0.0))

    def params_to_host(self, out=None):
        """The parameters as FlatParams (into `out` when given)."""
        return self.params.to_host(out)

    def optimizer_to_host(self, opt):
        """Write the optimizer slots and update count into host Optimizer `opt` (for checkpoints)."""
        self.opt.store_to(opt)


def window_loss_sum(dp, ws, xs, ys):
    """The summed cross-entropy of a window xs, ys (t, B) on the host, t <= ws.T, from the state in
    ws.state, which then holds the window's last state (consecutive calls carry it; zero it to
    start a stream). Returns a float (one transfer in, one back)."""
    t = xs.shape[0]
    ws.load(xs, ys)
    _net().forward_loss_sum(dp, ws, t, ws.state_v)
    return float(ws.stats.copy_to_host(ws.stats_host)[0])


def device_loss_and_grads(params, xs, ys, state0, dropout=None):
    """charrnn.network.loss_and_grads computed on the device, for tests and checks.

    params: FlatParams; xs, ys (T, B) ids; state0 (L, S, B, H); dropout a Dropout or None.
    Returns (loss, {name: gradient shaped like the checkpoint arrays}, state after (L, S, B, H),
    dLoss/dstate0 (L, S, B, H)).
    """
    T, B = xs.shape
    dp, dg = DeviceParams.from_host(params), DeviceParams(params.arch)
    ws = _net().DeviceWorkspace(params.arch, T, B)
    ws.load(xs, ys)
    state = _cuda().to_device(np.ascontiguousarray(state0, np.float32))
    _net().loss_and_grads(dp, dg, ws, state, dropout)
    loss = float(ws.stats.copy_to_host()[0])
    return loss, dg.to_host().as_dict(), ws.state.copy_to_host(), ws.dstate0.copy_to_host()
