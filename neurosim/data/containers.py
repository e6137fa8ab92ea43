"""The containers every data set returns: :class:`Split` (one part) and :class:`Dataset` (train and test).

The arrays are read-only float64 views, so a cached data set can be shared safely between callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "Split"]


def _readonly_float64(a: np.ndarray, name: str) -> np.ndarray:
    """Return a read-only float64 2-D view (a copy only where a conversion is needed)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"Split.{name} must be a 2-D array of shape (N, features), got shape {arr.shape}; "
            f"reshape it, e.g. {name}.reshape(len({name}), -1)"
        )
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Split:
    """One part (train or test) of a data set.

    Parameters
    ----------
    x : numpy.ndarray
        Inputs, shape ``(N, d)``; stored as a read-only float64 array.
    y : numpy.ndarray
        Targets, shape ``(N, k)``; one-hot rows for classification. Stored read-only, float64.
    labels : numpy.ndarray or None
        Integer class labels, shape ``(N,)`` (int64), or ``None`` for regression.

    Raises
    ------
    ValueError
        If the shapes do not agree.
    """

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        x = _readonly_float64(self.x, "x")
        y = _readonly_float64(self.y, "y")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"Split.x has {x.shape[0]} rows but Split.y has {y.shape[0]}; "
                "pass one target row per input row"
            )
        labels = self.labels
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (x.shape[0],):
                raise ValueError(
                    f"Split.labels must have shape ({x.shape[0]},), got {labels.shape}; "
                    "pass one integer label per input row, or None for regression"
                )
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"Split.labels must be integers, got dtype {labels.dtype}; "
                    "convert with labels.astype(np.int64)"
                )
            labels = labels.astype(np.int64, copy=False).view()
            labels.flags.writeable = False
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        """Number of samples ``N``."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """Input width ``d``."""
        return int(self.x.shape[1])

    @property
    def n_outputs(self) -> int:
        """Target width ``k``."""
        return int(self.y.shape[1])

    def batches(
        self,
        batch_size: int,
        *,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate once over the split in mini-batches (one epoch).

        Parameters
        ----------
        batch_size : int
            Samples per batch, at least 1.
        rng : numpy.random.Generator, optional
            If given, the sample order is a permutation drawn from it; otherwise the stored order.
        drop_last : bool, default False
            Drop the final batch when it has fewer than ``batch_size`` samples.

        Yields
        ------
        x : numpy.ndarray
            ``(B, d)`` float64 inputs; a fresh, writable array.
        y : numpy.ndarray
            ``(B, k)`` float64 targets; a fresh, writable array.

        Raises
        ------
        ValueError
            If ``batch_size`` is not a positive integer.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}; "
                "pass e.g. batch_size=32"
            )
        if batch_size <= 0:
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size}; pass e.g. batch_size=32"
            )
        return self._iter_batches(int(batch_size), rng, drop_last)

    def _iter_batches(
        self, batch_size: int, rng: np.random.Generator | None, drop_last: bool
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx]


@dataclass(frozen=True)
class Dataset:
    """A named data set with a train and a test split.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"digits"`` or ``"mnist"``.
    train : Split
        Training samples.
    test : Split
        Held-out samples.
    n_classes : int or None
        Number of classes for classification, ``None`` for regression.
    """

    name: str
    train: Split
    test: Split
    n_classes: int | None

    @property
    def n_features(self) -> int:
        """Input width ``d``."""
        return self.train.n_features

    @property
    def n_outputs(self) -> int:
        """Target width ``k``."""
        return self.train.n_outputs


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float64)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
