"""Thread control: charrnn's worker threads each run numpy matrix products, and numpy's BLAS would
otherwise start one thread per core for each of them, so that the two fight over two cores.
The compiled kernels call no BLAS (charrnn.kernels.packed does their matrix products).
"""

from contextlib import contextmanager


@contextmanager
def compute_threads(blas_threads=1):
    """Run the enclosed numeric work with the BLAS pools limited to blas_threads."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas_threads, user_api="blas"):
        yield
