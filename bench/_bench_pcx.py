"""The canonical relaxation written with pcx (predictive coding on JAX), for ``bench_relaxation.py``.

Value nodes (``Vode``) hold the pre-activations ``v_1, v_2`` and the clamped output; the energy
is pcx's squared error ``Σ_l ||v_l - μ_l||² / 2`` with ``μ_l = W_l tanh(v_{l-1}) + b_l`` (input
through ``tanh`` too); inference is SGD at rate ``gamma`` on the hidden value nodes, i.e.
``v_l += gamma (-ε_l + f'(v_l) ⊙ W_{l+1}^T ε_{l+1})``, from the feedforward pass, inside one
``pcx.functional.jit`` (pcx's own idiom: the step loop is unrolled in the traced function).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pcx.functional as pxf
import pcx.nn as pxnn
import pcx.predictive_coding as pxc
import pcx.utils as pxu

__all__ = ["make_pcx_runner"]


class _Net(pxc.EnergyModule):
    def __init__(self, W, b):
        super().__init__()
        self.layers = [pxnn.Linear(w.shape[1], w.shape[0]) for w in W]
        for layer, w, bias in zip(self.layers, W, b):
            layer.nn.weight.set(jnp.asarray(w))
            layer.nn.bias.set(jnp.asarray(bias))
        self.vodes = [pxc.Vode() for _ in W]
        self.vodes[-1].h.frozen = True

    def __call__(self, x, y):
        h = jnp.tanh(x)
        for vode, layer in zip(self.vodes[:-1], self.layers[:-1]):
            h = jnp.tanh(vode(layer(h)))
        out = self.vodes[-1](self.layers[-1](h))
        if y is not None:
            self.vodes[-1].set("h", y)
        return out


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
def _forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=(None, 0),
          axis_name="batch")
def _energy(x, *, model):
    out = model(x, None)
    return jax.lax.psum(model.energy(), "batch"), out


def make_pcx_runner(p, steps: int, gamma: float):
    """``run() -> (v1, v2)``: one relaxation of ``steps`` steps on problem ``p`` (see bench_relaxation)."""
    if p.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    model = _Net(p.W, p.b)
    x, y = jnp.asarray(p.x), jnp.asarray(p.y)
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        _forward(x, y, model=model)
    optim_h = pxu.Optim(lambda: optax.sgd(gamma), pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))

    @pxf.jit()
    def relax(x, y, *, model, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            _forward(x, y, model=model)
        for _ in range(steps):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, g = pxf.value_and_grad(pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                                          has_aux=True)(_energy)(x, model=model)
            optim_h.step(model, g["model"])

    def run():
        relax(x, y, model=model, optim_h=optim_h)
        v1 = np.asarray(model.vodes[0].h.get().block_until_ready())
        return v1, np.asarray(model.vodes[1].h.get())

    return run
