"""Reference computations: algebraic backprop, angles, relative errors.

The backprop reference follows ALGORITHMS.md §1.2 exactly and shares no code with any circuit:
``e_L = -dℓ/da_L``, ``e_l = f'(a_l) ⊙ W_{l+1}^T e_{l+1}``, ``ΔW_l = e_l x_{l-1}^T`` summed
over the batch (the ascent direction ``-∂L/∂W`` for learning rate 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .activations import get_activation
from .losses import get_loss

__all__ = ["ForwardPass", "forward", "backprop_reference", "convnet_backprop_reference", "angle_deg", "relative_error"]


@dataclass(frozen=True)
class ForwardPass:
    """Pre-activations ``a[l]`` and activities ``x[l]`` (``x[0]`` is the input), shapes (B, d_l)."""

    a: list
    x: list


def forward(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, activation: str) -> ForwardPass:
    """Algebraic forward pass of an MLP with a linear output layer (pre-activation ``a_L``)."""
    f = get_activation(activation).f
    xs, as_ = [x], [None]
    h = x
    for l, (w, b) in enumerate(zip(weights, biases), start=1):
        a = h @ w.T + b
        as_.append(a)
        h = a if l == len(weights) else f(a)
        xs.append(h)
    return ForwardPass(as_, xs)


def backprop_reference(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray,
                       activation: str, loss: str) -> tuple[list, list]:
    """Backprop's updates ``(dW, db)`` for learning rate 1, loss summed over the batch.

    Parameters
    ----------
    weights : sequence of (d_l, d_{l-1}) arrays, l = 1..L
    biases : sequence of (d_l,) arrays
    x : (B, d_0) inputs; y : (B, d_L) targets
    activation : hidden non-linearity; loss : ``mse`` (linear output) or ``ce`` (softmax)

    Returns
    -------
    dW, db : lists over layers of ``-∂L/∂W_l`` (d_l, d_{l-1}) and ``-∂L/∂b_l`` (d_l,)
    """
    df = get_activation(activation).df
    fp = forward(weights, biases, x, activation)
    L = len(weights)
    e = get_loss(loss).output_error(fp.a[L], y)
    dW, db = [None] * L, [None] * L
    for l in range(L, 0, -1):
        dW[l - 1] = e.T @ fp.x[l - 1]
        db[l - 1] = e.sum(axis=0)
        if l > 1:
            e = df(fp.a[l - 1]) * (e @ weights[l - 1])
    return dW, db


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle in degrees between two arrays (Frobenius inner product); NaN if either is zero."""
    u = np.asarray(u, dtype=float).ravel()
    v = np.asarray(v, dtype=float).ravel()
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    a, b = u / nu, v / nv
    # 2·atan2(|a-b|, |a+b|) is accurate near 0° and 180°, where arccos of the cosine is not
    return float(np.degrees(2.0 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """``||estimate - reference|| / ||reference||`` (absolute error when the reference is 0)."""
    den = np.linalg.norm(reference)
    num = np.linalg.norm(np.asarray(estimate) - np.asarray(reference))
    return float(num / den) if den > 0 else float(num)


def convnet_backprop_reference(layers: Sequence[dict], input_shape: Sequence[int], weights: Sequence[np.ndarray],
                               biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, activation: str,
                               loss: str, feedback: Sequence[np.ndarray | None] | None = None) -> tuple[list, list]:
    """Backprop's updates ``(dW, db)`` of a convolutional network, for learning rate 1, loss summed over the batch.

    Written from the definitions with numpy's sliding windows, independently of
    :mod:`neurosim.spatial`: convolution as cross-correlation with stride and zero padding, ``k × k``
    pooling with stride ``k`` (max: the gradient goes to the first maximum of each window), the
    activation after every weight layer but the last, flattening in C order before dense layers.

    Parameters
    ----------
    layers : sequence of dict
        Forward order: ``{"kind": "conv", "stride", "padding"}``, ``{"kind": "maxpool"|"avgpool", "size"}``,
        ``{"kind": "dense"}`` (the ``layers`` entry of a check dump).
    input_shape : (C, H, W)
    weights : kernels ``(C_out, C_in, kh, kw)`` and dense ``(n_out, n_in)`` in forward order
    biases : ``(C_out,)`` per conv layer, ``(n_out,)`` per dense layer
    x : (B, C·H·W) or (B, C, H, W); y : (B, n_out)
    feedback : sequence of arrays or None, optional
        Per weight layer, the matrix the backward pass uses in place of ``W_l`` (same shape), e.g.
        the fixed random kernels of feedback alignment: the updates the circuit's dumped feedback
        predicts. ``None`` entries (or no list) use ``W_l``: backprop.

    Returns
    -------
    dW, db : lists over weight layers of ``-∂L/∂W_l`` and ``-∂L/∂b_l``
    """
    from numpy.lib.stride_tricks import sliding_window_view

    act = get_activation(activation)
    h = np.asarray(x, dtype=float).reshape((len(x),) + tuple(int(v) for v in input_shape))
    tape = []  # per item: what the backward pass needs
    weight_items = [i for i, item in enumerate(layers) if item["kind"] in ("conv", "dense")]
    last = weight_items[-1]
    feedback = list(feedback) if feedback is not None else [None] * len(weights)
    backward = [w if f is None else np.asarray(f, dtype=float) for w, f in zip(weights, feedback)]
    w_iter = iter(zip(weights, biases, backward))
    for i, item in enumerate(layers):
        kind = item["kind"]
        if kind in ("maxpool", "avgpool"):
            k = int(item["size"])
            b_, c, hh, ww = h.shape
            ho, wo = hh // k, ww // k
            win = h[:, :, :ho * k, :wo * k].reshape(b_, c, ho, k, wo, k).transpose(0, 1, 2, 4, 3, 5)
            win = win.reshape(b_, c, ho, wo, k * k)
            tape.append((kind, k, h.shape, win.argmax(axis=-1)))
            h = win.max(axis=-1) if kind == "maxpool" else win.mean(axis=-1)
            continue
        w, b, w_back = next(w_iter)
        if kind == "conv":
            s, p = int(item["stride"]), int(item["padding"])
            hp = np.pad(h, ((0, 0), (0, 0), (p, p), (p, p)))
            cols = sliding_window_view(hp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]  # (B, C, Ho, Wo, kh, kw)
            a = np.einsum("bchwij,ocij->bohw", cols, w) + b[None, :, None, None]
            tape.append(("conv", s, p, h, cols, w_back))
        else:
            flat = h.reshape(len(h), -1)
            a = flat @ w.T + b
            tape.append(("dense", h.shape, flat, w_back))
        tape[-1] = tape[-1] + (a,)
        h = a if i == last else act.f(a)
    e = get_loss(loss).output_error(h.reshape(len(h), -1), y).reshape(h.shape)  # -dL/da of the last layer
    dW, db = [], []
    for i in range(len(layers) - 1, -1, -1):
        entry = tape[i]
        kind = entry[0]
        if kind in ("maxpool", "avgpool"):  # e: -dL/d(pool output) -> -dL/d(pool input)
            _, k, shape, arg = entry
            b_, c, hh, ww = shape
            ho, wo = hh // k, ww // k
            if kind == "avgpool":
                win = np.repeat(e[..., None], k * k, axis=-1) / (k * k)
            else:
                win = (np.arange(k * k) == arg[..., None]) * e[..., None]
            e_in = np.zeros(shape)
            e_in[:, :, :ho * k, :wo * k] = win.reshape(b_, c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
                b_, c, ho * k, wo * k)
        elif kind == "conv":  # e: -dL/da
            _, s, p, h_in, cols, w, a = entry
            dW.append(np.einsum("bohw,bchwij->ocij", e, cols))
            db.append(e.sum(axis=(0, 2, 3)))
            grad = np.zeros((h_in.shape[0], h_in.shape[1], h_in.shape[2] + 2 * p, h_in.shape[3] + 2 * p))
            ho, wo = e.shape[2:]
            for oi in range(ho):
                for oj in range(wo):
                    grad[:, :, oi * s:oi * s + w.shape[2], oj * s:oj * s + w.shape[3]] += np.einsum(
                        "bo,ocij->bcij", e[:, :, oi, oj], w)
            e_in = grad[:, :, p:p + h_in.shape[2], p:p + h_in.shape[3]]
        else:
            _, shape, flat, w, a = entry
            e2 = e.reshape(len(e), -1)
            dW.append(e2.T @ flat)
            db.append(e2.sum(axis=0))
            e_in = (e2 @ w).reshape(shape)
        if i > 0 and tape[i - 1][0] in ("conv", "dense"):  # the input was f(a) of the layer below
            a_below = tape[i - 1][-1]
            e = act.df(a_below) * e_in.reshape(a_below.shape)
        else:
            e = e_in
    return dW[::-1], db[::-1]
