"""Spatial operators against independent definitions.

Oracles: a direct quadruple loop for the convolution (cross-correlation with stride and zero
padding), the adjoint identity ``<K ⋆ x, y> = <x, Kᵀ ⋆ y>`` for the transposed convolution and
for unpooling, and finite differences of ``<K ⋆ x, y>`` in ``K`` for the weight gradient.
Geometries are drawn by hypothesis.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurosim.spatial import (Conv2d, Pool, conv2d, conv2d_transpose, conv2d_weight_grad, conv_output_shape, pool,
                              pool_output_shape, unpool)


def direct_conv(x, k, stride, pad):
    b, c, h, w = x.shape
    co, ci, kh, kw = k.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((b, co, ho, wo))
    for n in range(b):
        for o in range(co):
            for i in range(ho):
                for j in range(wo):
                    out[n, o, i, j] = np.sum(xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw] * k[o])
    return out


geometry = st.fixed_dictionaries({
    "b": st.integers(1, 3), "c": st.integers(1, 3), "co": st.integers(1, 3), "h": st.integers(3, 8),
    "w": st.integers(3, 8), "kh": st.integers(1, 3), "kw": st.integers(1, 3), "stride": st.integers(1, 2),
    "pad": st.integers(0, 2), "seed": st.integers(0, 10_000)})


@settings(max_examples=40, deadline=None)
@given(geometry)
def test_convolution_transpose_and_weight_gradient(g):
    rng = np.random.default_rng(g["seed"])
    shape = (g["c"], g["h"], g["w"])
    k = rng.normal(size=(g["co"], g["c"], g["kh"], g["kw"]))
    conv = Conv2d(g["stride"], g["pad"])
    out_shape = conv_output_shape(shape, k.shape, conv)
    x = rng.normal(size=(g["b"], int(np.prod(shape))))
    y = conv2d(x, k, shape, conv)
    ref = direct_conv(x.reshape((g["b"],) + shape), k, g["stride"], g["pad"])
    assert ref.shape[1:] == out_shape
    np.testing.assert_allclose(y, ref.reshape(g["b"], -1), rtol=1e-12, atol=1e-12)
    z = rng.normal(size=y.shape)
    assert np.sum(y * z) == pytest.approx(np.sum(x * conv2d_transpose(z, k, shape, conv)), rel=1e-10, abs=1e-10)
    grad = conv2d_weight_grad(z, x, k.shape, shape, conv)
    eps = 1e-6
    idx = tuple(rng.integers(0, n) for n in k.shape)
    kp, km = k.copy(), k.copy()
    kp[idx] += eps
    km[idx] -= eps
    fd = (np.sum(conv2d(x, kp, shape, conv) * z) - np.sum(conv2d(x, km, shape, conv) * z)) / (2 * eps)
    assert grad[idx] == pytest.approx(fd, rel=1e-6, abs=1e-8)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(1, 3),
       st.sampled_from(["max", "avg"]), st.integers(0, 10_000))
def test_pooling_and_its_adjoint(b, c, h, w, k, kind, seed):
    if h < k or w < k:
        return
    rng = np.random.default_rng(seed)
    p = Pool(kind, k)
    shape = (c, h, w)
    x = rng.normal(size=(b, c * h * w))
    y = pool(x, shape, p)
    ho, wo = pool_output_shape(shape, p)[1:]
    blocks = x.reshape(b, c, h, w)[:, :, :ho * k, :wo * k].reshape(b, c, ho, k, wo, k)
    ref = blocks.max(axis=(3, 5)) if kind == "max" else blocks.mean(axis=(3, 5))
    np.testing.assert_allclose(y, ref.reshape(b, -1), rtol=1e-12, atol=1e-15)
    z = rng.normal(size=y.shape)
    back = unpool(z, shape, p, route=x)
    if kind == "avg":  # exact adjoint of a linear map
        assert np.sum(y * z) == pytest.approx(np.sum(x * back), rel=1e-12)
    else:  # the derivative of max pooling at x: moving the winners moves the output
        eps = 1e-7
        assert np.sum(pool(x + eps * back, shape, p) * z) - np.sum(y * z) == pytest.approx(
            eps * np.sum(z * z), rel=1e-5)


def test_bad_geometry_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match="reads 2 channels but the input maps"):
        conv_output_shape((3, 8, 8), (4, 2, 3, 3), Conv2d())
    with pytest.raises(ValueError, match="does not fit maps 2x2"):
        conv_output_shape((1, 2, 2), (1, 1, 5, 5), Conv2d())
    with pytest.raises(ValueError, match="stride"):
        Conv2d(stride=0)
    with pytest.raises(ValueError, match="'max' or 'avg'"):
        Pool("median", 2)
