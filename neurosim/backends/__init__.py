"""Array backends: numpy (the reference), numba (fused CPU kernels), cupy (GPU).

Every backend implements :class:`~neurosim.backends.base.Backend`; circuits never see which
one runs them.
"""
from .base import Backend, RelaxResult, Diverged, get_backend, available_backends, register_backend
from .numpy_backend import NumpyBackend

__all__ = ["Backend", "RelaxResult", "Diverged", "get_backend", "available_backends", "register_backend", "NumpyBackend"]
