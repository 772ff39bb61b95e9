"""One training step, validation and the host copy of the state, on the CPU or on a CUDA device.

charrnn.train's loop is the same for both; it talks to one of these:

    steps.workers                the CPU worker threads (None on CUDA), recorded in checkpoints
    steps.reset_hidden()         state = 0 (every epoch starts there)
    steps.step(start, lr)        loss and gradients of the window at step `start` of the streams, from the
                                 carried state, clipping, and an optimizer update unless the loss or the
                                 norm is inf/NaN; -> (loss, norm)
    steps.validation_loss(rows)  mean loss on the validation rows (charrnn.batches.split_rows)
    steps.to_host()              run.params, run.opt and run.state up to date (before checks and saves)

On the CPU the state lives in the _Run (run.params, run.grads, run.opt, run.state) and to_host does
nothing. On CUDA, parameters, optimizer slots and the carried state stay on the device
(charrnn.cuda_backend.DeviceTrainer), the training ids are uploaded once and windows are cut
on the device, and only the loss and gradient norm come back per step;
to_host copies them into the _Run for checkpoints. Checkpoints are the same either way.
"""

import math

import numpy as np

from charrnn.batches import fill_window
from charrnn.errors import UsageError
from charrnn.evaluate import device_rows_loss, validation_loss
from charrnn.kernels import cpu
from charrnn.network import Dropout
from charrnn.parallel import WindowRunner


class CpuSteps:
    """The CPU path: the B streams shared by worker threads (charrnn.parallel.WindowRunner)."""

    def __init__(self, run, T, B, streams):
        self.run, self.T, self.B, self.streams = run, T, B, streams
        self.runner = WindowRunner(run.params, T, B, streams.dtype, workers=run.cfg.threads or None)
        self.workers = self.runner.workers
        self.xs = np.empty((T, B), streams.dtype)
        self.ys = np.empty((T, B), streams.dtype)

    def close(self):
        self.runner.close()

    def reset_hidden(self):
        self.run.state[...] = 0.0

    def step(self, start, lr):
        run = self.run
        fill_window(self.streams, start, self.xs, self.ys)
        cfg = run.cfg
        dropout = Dropout(cfg.dropout, cfg.seed, run.step) if cfg.dropout > 0 else None
        loss = self.runner.loss_and_grads(run.params, run.grads, self.xs, self.ys, run.state, dropout)  # carries run.state forward
        norm = cpu.clip_by_global_norm(run.grads.flat, run.cfg.clip)
        if math.isfinite(loss) and math.isfinite(norm):
            run.opt.step(run.params, run.grads, lr)
        return loss, norm

    def validation_loss(self, rows):
        return float(validation_loss(self.run.params, rows, self.T, self.runner))

    def to_host(self):
        pass


class CudaSteps:
    """The CUDA path: charrnn.cuda_backend.DeviceTrainer, validated on the device too. Dropout
    masks come from the same hash as on the CPU (the device runs all B streams, stream0 = 0)."""

    workers = None

    def __init__(self, run, T, B, streams):
        from charrnn import cuda_backend

        self.run, self.T, self.B = run, T, B
        cfg = run.cfg
        try:
            self.trainer = cuda_backend.DeviceTrainer(run.params, T, B, cfg.optimizer, cfg.clip, opt=run.opt,
                                                      weight_decay=cfg.weight_decay)  # fmt: skip
        except ValueError as err:  # a window too large for the launch grid
            raise UsageError(f"--device cuda: {err}") from None
        self.trainer.hidden_state = run.state  # (L, S, B, H): zeros, or a resumed run's carried state
        self.trainer.upload_streams(streams)  # the training ids stay on the device
        self.val_ws = None  # made at the first validation (its stream count is known then)

    def close(self):
        pass

    def reset_hidden(self):
        self.trainer.reset_hidden()

    def step(self, start, lr):
        run, cfg = self.run, self.run.cfg
        dropout = Dropout(cfg.dropout, cfg.seed, run.step) if cfg.dropout > 0 else None
        loss = self.trainer.step_at(start, lr, dropout)  # the update is skipped on the device when not finite
        return loss, self.trainer.last_norm

    def validation_loss(self, rows):
        if self.val_ws is None:
            from charrnn.network_cuda import DeviceWorkspace

            self.val_ws = DeviceWorkspace(self.run.params.arch, min(self.T, rows.shape[1] - 1), rows.shape[0])
        total, count = device_rows_loss(self.trainer.params, rows, self.T, self.val_ws)
        return total / count

    def to_host(self):
        run = self.run
        self.trainer.params_to_host(run.params)
        self.trainer.optimizer_to_host(run.opt)
        run.state[...] = self.trainer.hidden_state


def make_steps(device, run, T, B, streams):
    """The step object for `device`; streams is the (B, L+1) training stream view."""
    return (CudaSteps if device == "cuda" else CpuSteps)(run, T, B, streams)

