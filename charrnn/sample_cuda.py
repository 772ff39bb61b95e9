"""One stream generating on a CUDA device, for every cell and layer count: the steps of
charrnn.kernels.sampling (advance, sample_tokens), as launches.

Shapes: L layers, S states, H hidden, G*H gate rows, V vocabulary; the state is (L, S, 1, H), one
stream's, kept in two device buffers that each token's step ping-pongs between (a cell's step
reads every unit of the old state). Per token and layer: the input projection (gather_row for
layer 0, linear from the layer below above it) and the cell's step (its cuda.py Layer.step); then
the head's product and the draw. Uniform numbers come from the caller's numpy Generator on the host
(rng.random(n) per chunk, one per drawn token, uploaded once per chunk), and exactly as many are
consumed as the CPU sampler would, so a seed gives the same text on both up to float rounding at
near-ties. Importing this module imports numba.cuda: charrnn.sample imports it only on device="cuda".
It builds on charrnn.cuda_backend (DeviceParams) and charrnn.network_cuda (state_views), neither of
which imports it.
"""

import numpy as np
from numba import cuda

from charrnn.cells.modules import cuda_module
from charrnn.cuda_backend import DeviceParams
from charrnn.kernels import cuda as K
from charrnn.network_cuda import state_views


class DeviceSampler:
    """The state stays on the device; a chunk's tokens come back at its end."""

    def __init__(self, params, max_chunk=4096):
        arch = params.arch
        L, S, H, V, GH = arch.layers, arch.states, arch.hidden, arch.vocab_size, arch.gates * arch.hidden
        self.params = dp = DeviceParams.from_host(params)
        self.L, self.max_chunk = L, max_chunk
        module = cuda_module(arch.cell)
        self.layers = [module.Layer(1, 1, H) for _ in range(L)]  # one step of one stream each (its scratch)
        zero_bias = K.zeros(GH)  # bias_hh of cells that keep none
        self.weights = [(dp[f"weight_ih_l{l}"], dp[f"bias_ih_l{l}"], dp[f"weight_hh_l{l}"],
                         dp.views.get(f"bias_hh_l{l}", zero_bias)) for l in range(L)]  # fmt: skip
        self.states = [K.zeros((L, S, 1, H)), K.zeros((L, S, 1, H))]  # states[self.cur] is the current one
        self.views = [state_views(s) for s in self.states]
        self.cur = 0
        self.start = K.zeros((L, S, 1, H))  # the state before a chunk, to replay an early stop
        self.pre = K.zeros((1, GH))
        self.logits = K.zeros((1, V))
        self.work, self.spare = K.zeros(V), K.zeros(2 * V)  # spare: two (V,) halves for the top-p cut
        self.allowed = {}  # draw.eos -> the (V,) bool allowed tokens (decided by it alone), on the device
        self.tokens = K.zeros(max_chunk + 1, np.int32)  # tokens[0] the input, tokens[i + 1] drawn at step i
        self.uniforms = K.zeros(max_chunk, np.float64)
        self.ids_host = cuda.pinned_array(max_chunk + 1, np.int32)

    def reset(self):
        """state = 0 (every sample starts there)."""
        self.states[self.cur].copy_to_device(np.zeros(self.states[self.cur].shape, np.float32))

    @property
    def state(self):
        """The current state (L, S, H), a host copy (CpuSampler.state's shape)."""
        return self.states[self.cur].copy_to_host()[:, :, 0]

    def _run(self, n, draw=None):
        """Feed tokens[0..n-1] through the layers; with a draw rule (charrnn.sample.Draw) each step
        also draws tokens[i + 1] from the new state (so tokens[i + 1] is known before step i + 1)."""
        dp, GH, V = self.params, self.pre.shape[1], self.logits.shape[1]
        gather, project = K.gather_row[K.flat(GH)], K.linear[K.tiled(1, GH)]
        head = K.matmul[K.tiled(1, V)]
        pick = K.draw_token[1, K.pow2_threads(V)]
        if draw is not None:
            allowed = self._allowed(draw)
            rule = (int(draw.no_repeat), np.float32(draw.temperature), int(draw.top_k), float(draw.top_p))
        for i in range(n):
            old, new = self.views[self.cur], self.views[1 - self.cur]
            for l, (Wih, bih, Whh, bhh) in enumerate(self.weights):
                if l == 0:
                    gather(self.tokens, i, Wih, bih, self.pre)
                else:
                    project(new[l - 1][0], Wih, bih, self.pre)
                self.layers[l].step(self.pre, Whh, bhh, old[l], new[l])
            self.cur = 1 - self.cur
            if draw is not None:
                head(new[self.L - 1][0], dp["weight_out"], self.logits, False, True)
                pick(self.logits, dp["bias_out"], allowed, *rule, self.uniforms, i, self.work, self.spare, self.tokens)

    def _allowed(self, draw):
        if draw.eos not in self.allowed:
            self.allowed[draw.eos] = cuda.to_device(draw.allowed(self.logits.shape[1]))
        return self.allowed[draw.eos]

    def _upload(self, ids):
        self.ids_host[: len(ids)] = ids
        self.tokens.copy_to_device(self.ids_host)

    def advance(self, ids):
        """Feed ids (N,) through the layers from the current state."""
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
        before = rng.bit_generator.state
        if draw.temperature != 0.0:
            self.uniforms[:n].copy_to_device(rng.random(n))
        self.start.copy_to_device(self.states[self.cur])
        self._run(n, draw)
        out = self.tokens[1 : n + 1].copy_to_host().astype(np.int64)
        stop_id = draw.stop_id
        stops = np.flatnonzero(out == stop_id) if stop_id >= 0 else ()
        if len(stops) and stops[0] + 1 < n:  # stopped early: give back the unused state and draws
            m = int(stops[0]) + 1
            if draw.temperature != 0.0:
                rng.bit_generator.state = before
                rng.random(m)
            self.states[self.cur].copy_to_device(self.start)
            self._run(m)  # tokens[0..m-1] are still the fed inputs
            return out[:m]
        return out
