"""What CUDA there is on this machine: whether numba-cuda is installed, whether the NVIDIA driver
library loads, whether numba-cuda's simulator is on, and from those whether CUDA can run here
(cuda_status) and on which GPU (current_gpu). charrnn.device decides `--device` with it.

Importing this module imports no numba. The checks go from cheap to dear and stop at the first
that fails, so a machine without numba-cuda or without a driver gets its answer without paying
for numba-cuda's import (about 250 ms).
"""

import os
import sys

def numba_cuda_installed():
    """Whether NVIDIA's numba-cuda package is installed. numba's own numba.cuda, deprecated, does
    not count: charrnn does not use it."""
    import importlib.util

    return importlib.util.find_spec("numba_cuda") is not None


def simulator_requested():
    """Whether NUMBA_ENABLE_CUDASIM asks for numba-cuda's simulator, read from the environment as
    numba will read it, without importing numba."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def simulated():
    """Whether numba-cuda runs its simulator (no GPU) in this process. Imports numba: ask it once
    CUDA is known to be usable."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def driver_loads():
    """Whether the CUDA driver library loads, tried by the names and folders numba-cuda tries. This
    takes about a millisecond, where importing numba-cuda to ask it takes about 250 ms, so
    `--device auto` (the default) costs nothing on a machine without a GPU driver."""
    import ctypes

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


def cuda_status():
    """(usable, reason): whether CUDA can run here, and a sentence saying why (not). Imports
    numba-cuda only when it is installed and a driver loads (or the simulator is asked for)."""
    if not numba_cuda_installed():
        return False, (
            "numba-cuda is not installed (pip install 'charrnn[cuda12]' or 'charrnn[cuda13]', "
            "to match the driver's CUDA version)"
        )
    if not simulator_requested() and not driver_loads():
        return False, "no CUDA driver was found (the NVIDIA driver's libcuda could not be loaded)"
    try:
        from numba import cuda

        if cuda.is_available():
            return True, "numba-cuda's CUDA simulator" if simulated() else "a CUDA GPU was found"
        return False, "no CUDA GPU or driver was found (numba-cuda reports none)"
    except Exception as error:  # a broken driver or toolkit install
        return False, f"CUDA could not start: {error}"


def cuda_available():
    """True when numba-cuda is installed and finds a GPU (or runs its simulator)."""
    return cuda_status()[0]


def current_gpu():
    """(name, "major.minor") of the current CUDA device; (None, None) when it cannot be read. Ask it
    once cuda_status says CUDA is usable (it imports numba-cuda)."""
    try:
        from numba import cuda

        device = cuda.get_current_device()
        name = getattr(device, "name", None)
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        if name is None and simulated():
            name = "numba-cuda simulator (no GPU)"
        return name, ".".join(map(str, device.compute_capability))
    except Exception:  # a device that went away, a driver error: the status line says enough
        return None, None
