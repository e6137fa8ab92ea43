"""Array backends: numpy (the reference), numba (fused CPU kernels), cupy (GPU).

Every backend implements :class:`~neurosim.backends.base.Backend`; circuits never see which
one runs them.
"""
# registers "numba" where numba is installed (numba itself is imported on first use)
from . import numba_backend  # noqa: F401
from .base import Backend, Diverged, RelaxResult, available_backends, get_backend, register_backend
from .default import default_backend
from .numpy_backend import NumpyBackend


def _cupy_backend(dtype: str = "float64") -> Backend:
    """``backend="cupy"``: imports CuPy only now; raises CupyUnavailable (an ImportError) without a GPU."""
    from .cupy_backend import CupyBackend

    return CupyBackend(dtype)


register_backend("cupy", _cupy_backend)

__all__ = ["Backend", "RelaxResult", "Diverged", "get_backend", "available_backends", "register_backend",
           "NumpyBackend", "default_backend"]
