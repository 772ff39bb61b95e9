"""Thread control: numpy's BLAS, SciPy's BLAS (which numba calls inside kernels) and numba's own
threads would otherwise each start one thread per core and fight over two cores.
"""

from contextlib import contextmanager


@contextmanager
def compute_threads(blas_threads=1):
    """Run the enclosed numeric work with every BLAS pool limited to blas_threads."""
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS now, so the limit reaches it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas_threads, user_api="blas"):
        yield
