"""Optimizers over flat parameter buffers: Adam (default), Adagrad, SGD, each with optional decoupled
weight decay (AdamW's rule: p -= lr * weight_decay * p before the update, on weights, not biases).
Clipping lives in the kernels."""

import math

from charrnn.kernels import cpu

SLOTS = {"adam": ("m", "v"), "adagrad": ("g2",), "sgd": ()}


class Optimizer:
    """Keeps per-parameter slots (flat, like the parameters) and the update count."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, name, params, weight_decay=0.0):
        self.name, self.weight_decay = name, weight_decay
        self.decay_mask = params.decay_mask() if weight_decay else None  # (P,) 1 on weights, 0 on biases
        self.slots = {slot: params.like() for slot in SLOTS[name]}
        self.updates = 0

    def step(self, params, grads, lr):
        """One update of params.flat in place from grads.flat."""
        self.updates += 1
        p, g = params.flat, grads.flat
        cast = p.dtype.type  # scalars in the parameters' precision keep the kernels' loops narrow
        if self.weight_decay:
            cpu.decay_weights(p, self.decay_mask, cast(lr * self.weight_decay))
        if self.name == "adam":
            m, v = self.slots["m"].flat, self.slots["v"].flat
            c1 = 1.0 - self.beta1**self.updates  # bias corrections, folded into the step size and eps
            c2 = 1.0 - self.beta2**self.updates
            alpha, eps = lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
            cpu.adam_update(p, g, m, v, cast(alpha), cast(self.beta1), cast(self.beta2), cast(eps))
        elif self.name == "adagrad":
            cpu.adagrad_update(p, g, self.slots["g2"].flat, cast(lr), cast(self.eps))
        else:
            cpu.sgd_update(p, g, cast(lr))

    def state_arrays(self):
        """{"opt.<slot>.<param>": array} for a checkpoint."""
        return {f"opt.{slot}.{name}": view.copy() for slot, buf in self.slots.items() for name, view in buf.views.items()}

    def load_state(self, arrays, updates):
        """Restore slots from state_arrays() output; missing slots are an error for the caller to report."""
        for slot, buf in self.slots.items():
            buf.load({name: arrays[f"opt.{slot}.{name}"] for name in buf.views})
        self.updates = int(updates)

    def has_state(self, arrays):
        return all(f"opt.{slot}.{name}" in arrays for slot, buf in self.slots.items() for name in buf.views)
