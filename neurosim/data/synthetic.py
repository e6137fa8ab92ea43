"""Synthetic tasks: a random teacher network labels Gaussian inputs (:func:`teacher_student`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .containers import Dataset, Split, _one_hot

__all__ = ["teacher_student"]

_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


def _activation(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    return z


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}; pass e.g. {name}=1000")
    return int(value)


def teacher_student(
    sizes: Sequence[int],
    n_train: int,
    n_test: int,
    *,
    activation: str = "tanh",
    seed: int = 0,
    noise: float = 0.0,
    classification: bool = False,
) -> Dataset:
    """A synthetic task: a random teacher network maps Gaussian inputs to targets.

    The teacher has layer widths ``sizes = [d_in, h_1, ..., d_out]``, weights drawn from
    ``N(0, 1/fan_in)``, no biases, ``activation`` on every hidden layer and a linear output.
    Inputs are i.i.d. ``N(0, 1)``. Teacher, training inputs, test inputs and noise come from
    independent streams spawned from ``seed``, so the teacher and the test set do not change
    when ``n_train`` changes.

    Parameters
    ----------
    sizes : sequence of int
        Teacher layer widths, at least two entries, all positive.
    n_train, n_test : int
        Number of training and test samples, positive.
    activation : {"tanh", "relu", "sigmoid", "linear"}, default "tanh"
        Nonlinearity of the teacher's hidden layers.
    seed : int, default 0
        Seed; the same arguments give identical arrays.
    noise : float, default 0.0
        Standard deviation of Gaussian noise added to the teacher's outputs. For regression it
        perturbs the targets; for classification it perturbs the logits before the argmax
        (label noise).
    classification : bool, default False
        If true, targets are one-hot argmax classes of the teacher's output (``sizes[-1]``
        classes, at least 2) and ``labels`` are set; otherwise targets are the real-valued
        outputs and ``labels`` is None.

    Returns
    -------
    Dataset
        ``name="teacher_student"``.

    Raises
    ------
    ValueError
        If ``sizes``, ``n_train``, ``n_test``, ``activation`` or ``noise`` is invalid.
    """
    try:
        widths = list(sizes)
    except TypeError:
        widths = None
    if widths is None or len(widths) < 2:
        raise ValueError(
            f"sizes must list at least 2 layer widths (input and output), got {sizes!r}; "
            "pass e.g. sizes=[20, 50, 5]"
        )
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w <= 0:
            raise ValueError(
                f"sizes must hold positive integer widths, got {sizes!r} (bad entry {w!r}); "
                "pass e.g. sizes=[20, 50, 5]"
            )
    widths = [int(w) for w in widths]
    n_train = _check_count("n_train", n_train)
    n_test = _check_count("n_test", n_test)
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {_ACTIVATIONS}, got {activation!r}; "
            "pass e.g. activation='tanh'"
        )
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)):
        raise ValueError(f"noise must be a number >= 0, got {noise!r}; pass e.g. noise=0.1")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise}; pass e.g. noise=0.1")
    if classification and widths[-1] < 2:
        raise ValueError(
            f"classification needs at least 2 output classes, got sizes[-1]={widths[-1]}; "
            "pass e.g. sizes=[20, 50, 5]"
        )

    teacher_ss, train_ss, test_ss, noise_ss = np.random.SeedSequence(seed).spawn(4)
    t_rng = np.random.default_rng(teacher_ss)
    weights = [
        t_rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        for n_in, n_out in zip(widths[:-1], widths[1:])
    ]
    noise_train_ss, noise_test_ss = noise_ss.spawn(2)

    def make(n: int, x_ss: np.random.SeedSequence, e_ss: np.random.SeedSequence) -> Split:
        x = np.random.default_rng(x_ss).standard_normal((n, widths[0]))
        h = x
        for i, w in enumerate(weights):
            h = h @ w.T
            if i < len(weights) - 1:
                h = _activation(activation, h)
        if noise > 0:
            h = h + float(noise) * np.random.default_rng(e_ss).standard_normal(h.shape)
        if classification:
            labels = np.argmax(h, axis=1).astype(np.int64)
            return Split(x, _one_hot(labels, widths[-1]), labels)
        return Split(x, h, None)

    return Dataset(
        name="teacher_student",
        train=make(n_train, train_ss, noise_train_ss),
        test=make(n_test, test_ss, noise_test_ss),
        n_classes=widths[-1] if classification else None,
    )
