"""Spatial projections: 2-D convolution and pooling on populations with a shape ``(C, H, W)``.

States stay row batches ``(B, n)`` with ``n = C·H·W`` in C order (channel, row, column); these
functions view them as ``(B, C, H, W)``. A spatial projection computes, from the presynaptic
signal ``s``:

* forward: ``y = K ⋆ pool(s)`` (``⋆``: cross-correlation with kernel ``K`` of shape
  ``(C_out, C_in, kh, kw)``, stride and zero padding, as in deep-learning libraries), or a dense
  ``y = pool(s) Wᵀ`` on the flattened pooled maps;
* transposed (the adjoint, for feedback): ``y = unpool(Kᵀ ⋆ s)`` with the same kernel in its
  forward layout (``s`` has the forward output's shape, ``y`` the forward input's), where
  ``unpool`` is the adjoint of the pooling: average pooling spreads each value over its window
  divided by ``k²``; max pooling routes it to the window's maximum of a *route* signal (the
  forward pass's presynaptic rate, which chose the winners).

Pooling windows are ``k × k`` with stride ``k`` (LeNet's); a map whose side is not a multiple
of ``k`` drops the remainder, as deep-learning libraries do. Every function works on numpy
and cupy arrays (``xp``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["Shape", "Conv2d", "Pool", "conv_output_shape", "pool_output_shape", "conv2d", "conv2d_transpose",
           "conv2d_weight_grad", "pool", "unpool", "unpool_adjoint"]

Shape = tuple[int, int, int]
"""``(channels, height, width)`` of a spatial population."""


@dataclass(frozen=True)
class Conv2d:
    """Geometry of a 2-D convolution (the kernel is the projection's weights).

    Parameters
    ----------
    stride : int
        Step between kernel positions (>= 1).
    padding : int
        Zero padding on every side of the input maps (>= 0).
    """

    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        if int(self.stride) < 1:
            raise ValueError(f"Conv2d stride={self.stride!r} must be a positive integer")
        if int(self.padding) < 0:
            raise ValueError(f"Conv2d padding={self.padding!r} must be >= 0")
        object.__setattr__(self, "stride", int(self.stride))
        object.__setattr__(self, "padding", int(self.padding))

    def describe(self) -> dict[str, Any]:
        return {"kind": "conv", "stride": self.stride, "padding": self.padding}


@dataclass(frozen=True)
class Pool:
    """``k × k`` pooling with stride ``k`` applied to a projection's presynaptic signal.

    Parameters
    ----------
    kind : {"max", "avg"}
    size : int
        Window side ``k`` (>= 1).
    """

    kind: Literal["max", "avg"] = "max"
    size: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("max", "avg"):
            raise ValueError(f"Pool kind={self.kind!r} must be 'max' or 'avg'")
        if int(self.size) < 1:
            raise ValueError(f"Pool size={self.size!r} must be a positive integer")
        object.__setattr__(self, "size", int(self.size))

    def describe(self) -> dict[str, Any]:
        return {"kind": f"{self.kind}pool", "size": self.size}


def conv_output_shape(in_shape: Shape, kernel_shape: tuple[int, int, int, int], conv: Conv2d) -> Shape:
    """``(C_out, H_out, W_out)`` of a convolution of maps ``in_shape`` with a kernel ``(C_out, C_in, kh, kw)``.

    Raises
    ------
    ValueError
        When the channels disagree or the kernel is larger than the padded maps.
    """
    c, h, w = in_shape
    c_out, c_in, kh, kw = kernel_shape
    if c_in != c:
        raise ValueError(f"kernel {kernel_shape} reads {c_in} channels but the input maps {in_shape} have {c}")
    h_out = (h + 2 * conv.padding - kh) // conv.stride + 1
    w_out = (w + 2 * conv.padding - kw) // conv.stride + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit maps {h}x{w} with padding {conv.padding}")
    return (c_out, h_out, w_out)


def pool_output_shape(in_shape: Shape, p: Pool) -> Shape:
    """``(C, H // k, W // k)``; ValueError when a map is smaller than the window."""
    c, h, w = in_shape
    if h < p.size or w < p.size:
        raise ValueError(f"{p.kind} pooling {p.size}x{p.size} does not fit maps {h}x{w}")
    return (c, h // p.size, w // p.size)


def _xp(a):
    return np if type(a).__module__.split(".")[0] == "numpy" else __import__(type(a).__module__.split(".")[0])


def _patches(s, in_shape: Shape, kh: int, kw: int, conv: Conv2d, h_out: int, w_out: int):
    """(B, H_out, W_out, C, kh, kw) view of the (padded) input windows: im2col without a copy."""
    xp = _xp(s)
    x = s.reshape((s.shape[0],) + tuple(in_shape))
    p, st = conv.padding, conv.stride
    if p:
        x = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    x = xp.ascontiguousarray(x)
    b, c, h, w = x.shape
    sb, sc, sh, sw = x.strides
    return xp.lib.stride_tricks.as_strided(x, (b, h_out, w_out, c, kh, kw), (sb, sh * st, sw * st, sc, sh, sw))


def conv2d(s, kernel, in_shape: Shape, conv: Conv2d):
    """``K ⋆ s``: (B, C_in·H·W) -> (B, C_out·H_out·W_out) (one matrix product over the windows)."""
    xp = _xp(s)
    c_out, c_in, kh, kw = kernel.shape
    _, h_out, w_out = conv_output_shape(in_shape, kernel.shape, conv)
    cols = _patches(s, in_shape, kh, kw, conv, h_out, w_out).reshape(s.shape[0] * h_out * w_out, c_in * kh * kw)
    out = cols @ kernel.reshape(c_out, -1).T  # (B·Ho·Wo, C_out)
    return xp.ascontiguousarray(out.reshape(s.shape[0], h_out * w_out, c_out).transpose(0, 2, 1)).reshape(
        s.shape[0], c_out * h_out * w_out)


def conv2d_transpose(s, kernel, in_shape: Shape, conv: Conv2d):
    """The adjoint of :func:`conv2d`: (B, C_out·H_out·W_out) -> (B, C_in·H·W) for maps ``in_shape``."""
    xp = _xp(s)
    c_out, c_in, kh, kw = kernel.shape
    _, h_out, w_out = conv_output_shape(in_shape, kernel.shape, conv)
    c, h, w = in_shape
    p, st = conv.padding, conv.stride
    y = s.reshape(s.shape[0], c_out, h_out * w_out).transpose(0, 2, 1)  # (B, Ho·Wo, C_out)
    cols = (y @ kernel.reshape(c_out, -1)).reshape(s.shape[0], h_out, w_out, c_in, kh, kw)
    out = xp.zeros((s.shape[0], c, h + 2 * p, w + 2 * p), dtype=s.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + st * (h_out - 1) + 1:st, j:j + st * (w_out - 1) + 1:st] += cols[:, :, :, :, i, j].transpose(
                0, 3, 1, 2)
    if p:
        out = out[:, :, p:p + h, p:p + w]
    return xp.ascontiguousarray(out).reshape(s.shape[0], c * h * w)


def conv2d_weight_grad(post, pre, kernel_shape: tuple[int, int, int, int], in_shape: Shape, conv: Conv2d):
    """``Σ_batch,positions post ⊗ patch(pre)``: the kernel-shaped Hebbian product (the weight gradient).

    ``post`` (B, C_out·H_out·W_out), ``pre`` (B, C_in·H·W) -> (C_out, C_in, kh, kw).
    """
    c_out, c_in, kh, kw = kernel_shape
    _, h_out, w_out = conv_output_shape(in_shape, kernel_shape, conv)
    cols = _patches(pre, in_shape, kh, kw, conv, h_out, w_out).reshape(pre.shape[0] * h_out * w_out, -1)
    y = post.reshape(post.shape[0], c_out, h_out * w_out).transpose(0, 2, 1).reshape(-1, c_out)
    return (y.T @ cols).reshape(kernel_shape)


def _windows(s, in_shape: Shape, k: int):
    """(B, C, H//k, W//k, k·k) view-copy of the pooling windows (remainder rows/columns dropped)."""
    c, h, w = in_shape
    ho, wo = h // k, w // k
    x = s.reshape(s.shape[0], c, h, w)[:, :, :ho * k, :wo * k]
    return x.reshape(s.shape[0], c, ho, k, wo, k).transpose(0, 1, 2, 4, 3, 5).reshape(s.shape[0], c, ho, wo, k * k)


def pool(s, in_shape: Shape, p: Pool):
    """Max or average over ``k × k`` windows: (B, C·H·W) -> (B, C·(H//k)·(W//k))."""
    win = _windows(s, in_shape, p.size)
    out = win.max(axis=-1) if p.kind == "max" else win.mean(axis=-1)
    return out.reshape(s.shape[0], -1)


def unpool(s, in_shape: Shape, p: Pool, route=None):
    """The adjoint of :func:`pool`: (B, C·(H//k)·(W//k)) -> (B, C·H·W).

    Average pooling: every window position receives ``value / k²``. Max pooling: the value goes
    to the position of the window's maximum of ``route`` (B, C·H·W), the first one on ties (as
    ``argmax``); the other positions receive 0.
    """
    xp = _xp(s)
    c, h, w = in_shape
    k = p.size
    ho, wo = h // k, w // k
    v = s.reshape(s.shape[0], c, ho, wo, 1)
    if p.kind == "avg":
        win = xp.broadcast_to(v / (k * k), (s.shape[0], c, ho, wo, k * k))
    else:
        if route is None:
            raise ValueError("max unpooling needs the route signal that chose the maxima")
        arg = _windows(route, in_shape, k).argmax(axis=-1)[..., None]
        win = xp.where(xp.arange(k * k) == arg, v, xp.zeros((), dtype=s.dtype))
    full = xp.zeros((s.shape[0], c, h, w), dtype=s.dtype)
    full[:, :, :ho * k, :wo * k] = win.reshape(s.shape[0], c, ho, wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
        s.shape[0], c, ho * k, wo * k)
    return full.reshape(s.shape[0], c * h * w)


def unpool_adjoint(s, in_shape: Shape, p: Pool, route=None):
    """The adjoint of :func:`unpool`: (B, C·H·W) -> (B, C·(H//k)·(W//k)).

    Average: the window mean (``Σ / k²``). Max: the value at the window's maximum of ``route``.
    """
    if p.kind == "avg":
        return pool(s, in_shape, p)
    if route is None:
        raise ValueError("the adjoint of max unpooling needs the route signal that chose the maxima")
    xp = _xp(s)
    win = _windows(s, in_shape, p.size)
    arg = _windows(route, in_shape, p.size).argmax(axis=-1)[..., None]
    return xp.take_along_axis(win, arg, axis=-1)[..., 0].reshape(s.shape[0], -1)
