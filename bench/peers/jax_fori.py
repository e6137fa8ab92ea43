"""The canonical relaxation in JAX's best idiom, a worker of ``bench_relaxation.py``.

One ``jax.jit`` around the whole relaxation: ``m1 = W1 tanh(x) + b1`` then ``lax.fori_loop``
over all steps (XLA compiles the loop once; no Python between steps); the run blocks on the
result (``block_until_ready``). Two spellings of the same products (variants):

* ``jax``: the products as ``einsum`` contractions against ``W`` as stored
  (``einsum("ji,bi->bj", W2, f1)`` and ``einsum("bj,ji->bi", e2, W2)``);
* ``jax-matmul``: the textbook ``f1 @ W2.T`` and ``e2 @ W2``. On this benchmark's CPU with
  jax 0.10.2 (and 0.4.38) this spelling is several times slower at batch 1 inside the loop
  (XLA lowers the transposed operand badly there); both are reported and the driver compares
  neurosim with the faster one.
 float64 problems switch on ``jax_enable_x64`` before any array
is made. Threads: the driver sets ``XLA_FLAGS`` (XLA ignores ``OMP_NUM_THREADS``) and ``taskset``.
Usage: ``python jax_fori.py PROBLEM.npz OUT.npz``.
"""
from __future__ import annotations

import sys

import numpy as np
from _worker import Runner, load_problem, serve


def make_runner(p: dict, spelling: str = "einsum") -> Runner:
    """``run() -> (v1, v2)``: one jitted ``fori_loop`` relaxation on device arrays made once.

    Parameters
    ----------
    p : dict
        The problem (see ``_worker.load_problem``).
    spelling : {"einsum", "matmul"}
        How the products are written (see the module docstring).
    """
    import jax

    if p["W1"].dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    steps, gamma = p["steps"], p["gamma"]

    if spelling == "einsum":
        def fwd(W, a):
            return jnp.einsum("ji,bi->bj", W, a)

        def back(e, W):
            return jnp.einsum("bj,ji->bi", e, W)
    else:
        def fwd(W, a):
            return a @ W.T

        def back(e, W):
            return e @ W

    @jax.jit
    def relax(W1, W2, W3, b1, b2, b3, x, y, v1, v2):
        m1 = fwd(W1, jnp.tanh(x)) + b1

        def body(_, carry):
            v1, v2 = carry
            f1, f2 = jnp.tanh(v1), jnp.tanh(v2)
            e1 = v1 - m1
            e2 = v2 - (fwd(W2, f1) + b2)
            e3 = y - (fwd(W3, f2) + b3)
            return (v1 + gamma * (-e1 + (1 - f1 * f1) * back(e2, W2)),
                    v2 + gamma * (-e2 + (1 - f2 * f2) * back(e3, W3)))

        return jax.lax.fori_loop(0, steps, body, (v1, v2))

    args = [jnp.asarray(p[k]) for k in ("W1", "W2", "W3", "b1", "b2", "b3", "x", "y", "v1", "v2")]

    def run():
        v1, v2 = relax(*args)
        return v1.block_until_ready(), v2.block_until_ready()

    return run


if __name__ == "__main__":
    problem = load_problem(sys.argv[1])
    runners = {"jax": make_runner(problem, "einsum"), "jax-matmul": make_runner(problem, "matmul")}
    import jax
    import jaxlib

    serve(runners, sys.argv[2], {"jax": jax.__version__, "jaxlib": jaxlib.__version__})
