"""Which device computes: `--device auto|cpu|cuda` resolved to "cpu" or "cuda", and what is available.

Asking for "cpu" never imports numba.cuda. "auto" (and "cuda") asks charrnn.cuda_probe.cuda_status,
which imports numba-cuda only when it is installed and a driver loads; "auto" picks CUDA only for a
real GPU, never numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1), which is for tests and far too
slow to train on; ask for it by name with "cuda".
"""

import os

from charrnn import cuda_probe
from charrnn.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
ENV = "CHARRNN_DEVICE"  # the default of --device when set (e.g. CHARRNN_DEVICE=cpu)


def _auto(usable):
    """What "auto" resolves to, given cuda_status's answer (simulated() is asked only when usable)."""
    return "cuda" if usable and not cuda_probe.simulated() else "cpu"


def resolve_device(name):
    """"cpu" or "cuda" for name in DEVICES; UsageError (one line, naming --device) when name is not
    one of them, or when "cuda" is asked for where it cannot run (the reason from cuda_status)."""
    if name not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)} (got {name!r})")
    if name == "cpu":
        return "cpu"
    usable, reason = cuda_probe.cuda_status()
    if name == "cuda":
        if not usable:
            raise UsageError(f"--device cuda: {reason}")
        return "cuda"
    return _auto(usable)


def describe_devices():
    """What `charrnn info --devices` shows, as a JSON-ready dict. Looks for a GPU (imports
    numba-cuda when it is installed and a driver loads)."""
    from importlib import metadata

    from charrnn.parallel import available_cores

    try:
        numba_cuda = metadata.version("numba-cuda")
    except metadata.PackageNotFoundError:
        numba_cuda = None
    usable, reason = cuda_probe.cuda_status()
    gpu, capability = cuda_probe.current_gpu() if usable else (None, None)
    return {
        "cpu_cores": os.cpu_count(),
        "cpu_usable_cores": available_cores(),
        "numba_cuda": numba_cuda,
        "cuda_usable": usable,
        "cuda_reason": reason,
        "gpu": gpu,
        "compute_capability": capability,
        "auto": _auto(usable),
    }


def device_lines(info):
    """The text of `charrnn info --devices`: (label, value) rows."""
    cores = f"{info['cpu_cores']} cores ({info['cpu_usable_cores']} usable)"
    rows = [
        ("CPU", cores),
        ("numba-cuda", info["numba_cuda"] or "not installed"),
        ("CUDA", ("usable: " if info["cuda_usable"] else "not usable: ") + info["cuda_reason"]),
    ]
    if info["gpu"] or info["compute_capability"]:
        cc = f" (compute capability {info['compute_capability']})" if info["compute_capability"] else ""
        rows.append(("GPU", f"{info['gpu'] or '?'}{cc}"))
    rows.append(("--device auto", info["auto"]))
    return rows
