"""Compiled kernels. `cpu` is always available; `cuda` mirrors its signatures (imported only on request)."""
