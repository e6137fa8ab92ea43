"""The numpy backend: the readable reference every other backend is tested against."""
from __future__ import annotations

import numpy as np

from .base import Backend, register_backend

__all__ = ["NumpyBackend"]


class NumpyBackend(Backend):
    """Reference backend on numpy arrays with the generic relaxation loop."""

    name = "numpy"
    xp = np


register_backend("numpy", NumpyBackend)
