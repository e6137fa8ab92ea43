"""The canonical relaxation in JAX's best idiom, a worker of ``bench_relaxation.py``.

One ``jax.jit`` around the whole relaxation: ``m1 = W1 tanh(x) + b1`` then ``lax.fori_loop``
over all steps (XLA compiles the loop once; no Python between steps); the run blocks on the
result (``block_until_ready``). float64 problems switch on ``jax_enable_x64`` before any array
is made. Threads: the driver sets ``XLA_FLAGS`` (XLA ignores ``OMP_NUM_THREADS``) and ``taskset``.
Usage: ``python jax_fori.py PROBLEM.npz OUT.npz``.
"""
from __future__ import annotations

import sys

import numpy as np
from _worker import Runner, load_problem, serve


def make_runner(p: dict) -> Runner:
    """``run() -> (v1, v2)``: one jitted ``fori_loop`` relaxation on device arrays made once."""
    import jax

    if p["W1"].dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    steps, gamma = p["steps"], p["gamma"]

    @jax.jit
    def relax(W1, W2, W3, b1, b2, b3, x, y, v1, v2):
        m1 = jnp.tanh(x) @ W1.T + b1

        def body(_, carry):
            v1, v2 = carry
            f1, f2 = jnp.tanh(v1), jnp.tanh(v2)
            e1 = v1 - m1
            e2 = v2 - (f1 @ W2.T + b2)
            e3 = y - (f2 @ W3.T + b3)
            return (v1 + gamma * (-e1 + (1 - f1 * f1) * (e2 @ W2)),
                    v2 + gamma * (-e2 + (1 - f2 * f2) * (e3 @ W3)))

        return jax.lax.fori_loop(0, steps, body, (v1, v2))

    args = [jnp.asarray(p[k]) for k in ("W1", "W2", "W3", "b1", "b2", "b3", "x", "y", "v1", "v2")]

    def run():
        v1, v2 = relax(*args)
        return v1.block_until_ready(), v2.block_until_ready()

    return run


if __name__ == "__main__":
    problem = load_problem(sys.argv[1])
    runner = make_runner(problem)
    import jax
    import jaxlib

    serve({"jax": runner}, sys.argv[2], {"jax": jax.__version__, "jaxlib": jaxlib.__version__})
