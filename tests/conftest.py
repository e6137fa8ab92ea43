"""Suite-wide settings.

Tests run two pytest workers on two cores: one BLAS thread per worker keeps them from
oversubscribing the machine (multi-threaded OpenBLAS under load is many times slower).
"""
from threadpoolctl import threadpool_limits

_BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
