"""The canonical relaxation written with pcx (predictive coding on JAX), a worker of ``bench_relaxation.py``.

Value nodes (``Vode``) hold the pre-activations ``v1, v2`` and the clamped output; the energy is
pcx's squared error ``sum_l ||v_l - mu_l||^2 / 2`` with ``mu_l = W_l tanh(v_{l-1}) + b_l`` (input
through ``tanh`` too); inference is SGD at rate ``gamma`` on the hidden value nodes, i.e.
``v_l += gamma (-e_l + f'(v_l) * W_{l+1}^T e_{l+1})``, from the feedforward pass, all inside one
``pcx.functional.jit``. Two idioms (variants):

* ``pcx-scan``: the steps in ``pcx.functional.scan`` (one traced step, a compiled loop; the
  first step runs before the scan, since the value nodes' cache only takes its steady
  structure after one step);
* ``pcx-unrolled``: a Python loop inside the jitted function (the step traced ``steps`` times,
  as pcx's examples write it).

Usage: ``python pcx_relax.py PROBLEM.npz OUT.npz``.
"""
from __future__ import annotations

import sys

import numpy as np
from _worker import Runner, load_problem, serve


def make_runners(p: dict) -> dict[str, Runner]:
    """``{"pcx-scan": run, "pcx-unrolled": run}``, each ``run() -> (v1, v2)`` on its own model."""
    import jax

    if p["W1"].dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    W = [p["W1"], p["W2"], p["W3"]]
    b = [p["b1"], p["b2"], p["b3"]]
    steps, gamma = p["steps"], p["gamma"]

    class Net(pxc.EnergyModule):
        def __init__(self):
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
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=(None, 0),
              axis_name="batch")
    def energy(x, *, model):
        out = model(x, None)
        return jax.lax.psum(model.energy(), "batch"), out

    def step(x, *, model, optim_h):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = pxf.value_and_grad(pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                                      has_aux=True)(energy)(x, model=model)
        optim_h.step(model, g["model"])

    def scan_step(_, x, *, model, optim_h):
        step(x, model=model, optim_h=optim_h)
        return (x,), None

    @pxf.jit()
    def relax_unrolled(x, y, *, model, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        for _ in range(steps):
            step(x, model=model, optim_h=optim_h)

    @pxf.jit()
    def relax_scan(x, y, *, model, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        step(x, model=model, optim_h=optim_h)  # the first step outside: it sets the carry's structure
        pxf.scan(scan_step, xs=jnp.arange(steps - 1))(x, model=model, optim_h=optim_h)

    x, y = jnp.asarray(p["x"]), jnp.asarray(p["y"])

    def runner(relax) -> Runner:
        model = Net()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h = pxu.Optim(lambda: optax.sgd(gamma), pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))

        def run():
            relax(x, y, model=model, optim_h=optim_h)
            return (model.vodes[0].h.get().block_until_ready(), model.vodes[1].h.get().block_until_ready())

        return run

    return {"pcx-scan": runner(relax_scan), "pcx-unrolled": runner(relax_unrolled)}


if __name__ == "__main__":
    problem = load_problem(sys.argv[1])
    runners = make_runners(problem)
    from importlib.metadata import version

    import jax

    serve(runners, sys.argv[2], {"pcx": version("pcx"), "jax": jax.__version__})
