"""Array backends: numpy (the reference), numba (fused CPU kernels), cupy (GPU).

Every backend implements :class:`~neurosim.backends.base.Backend`; circuits never see which
one runs them.
"""
from .base import Backend, RelaxResult, Diverged, get_backend, available_backends, register_backend
from .numpy_backend import NumpyBackend
from . import numba_backend as _numba_backend  # registers "numba" where numba is installed; imports numba on first use
from .default import default_backend


def _cupy_backend(dtype: str = "float64") -> Backend:
    """``backend="cupy"``: imports CuPy only now; raises CupyUnavailable (an ImportError) without a GPU."""
    from .cupy_backend import CupyBackend

    return CupyBackend(dtype)


register_backend("cupy", _cupy_backend)

__all__ = ["Backend", "RelaxResult", "Diverged", "get_backend", "available_backends", "register_backend", "NumpyBackend",
           "default_backend"]
