"""Which backend a simulation uses when it names none.

``numba`` (fused relaxation kernels) where numba is installed, ``numpy`` (the reference)
otherwise. The choice is logged once per process on the ``neurosim`` logger.
"""
from __future__ import annotations

import logging

from .base import available_backends

__all__ = ["default_backend"]

log = logging.getLogger("neurosim")
_announced: list[str] = []


def default_backend() -> str:
    """Name of the default backend: ``"numba"`` where it is present, else ``"numpy"``."""
    name = "numba" if "numba" in available_backends() else "numpy"
    if not _announced:
        why = ("numba is installed: relaxation phases run in fused compiled kernels; pass backend='numpy' "
               "for the reference loop" if name == "numba" else "numba is not installed; pip install numba for "
               "fused relaxation kernels")
        log.info("default backend: %s (%s)", name, why)
        _announced.append(name)
    return name
