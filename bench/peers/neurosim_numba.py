"""The canonical relaxation on neurosim's numba backend, a worker of ``bench_relaxation.py``.

Two variants, timed separately:

* ``neurosim``: the IL circuit's ``relax`` phase as the simulator runs it: ``il.build`` (once),
  then per relaxation the held prediction ``mu1 = W1 tanh(x0) + b1``, one ``PhaseField`` and
  ``NumbaBackend.relax`` (plan building, residual of every population at every step included);
* ``neurosim-kernel``: the ``NumbaBackend.relax`` call alone on a prepared ``PhaseField``.

Usage: ``python neurosim_numba.py PROBLEM.npz OUT.npz THREADS`` (``THREADS``: ``NumbaBackend(threads=...)``).
Environment: ``NEUROSIM_BENCH_BLAS_THREADS=n`` caps every BLAS pool at ``n`` threads with
threadpoolctl for the whole process (the thread-interference experiment of the benchmark doc).
"""
from __future__ import annotations

import os
import sys

import numpy as np
from _worker import Runner, load_problem, serve

from neurosim import circuits
from neurosim.backends.numba_backend import NumbaBackend
from neurosim.dynamics import PhaseField
from neurosim.schedule import Phase

SIZES = [784, 512, 512, 10]


class NeurosimRelax:
    """The IL circuit's relax phase on the numba backend, set up the way the simulator sets it up.

    Parameters
    ----------
    p : dict
        The problem (see ``_worker.load_problem``).
    threads : int
        ``NumbaBackend(threads=...)``: row blocks a large batch is split into.
    """

    def __init__(self, p: dict, threads: int):
        il = circuits.get("il")
        self.circuit = il.build(SIZES, "tanh", "mse", seed=0)
        relax = il.schedule(self.circuit, gamma=p["gamma"], max_steps=p["steps"]).phase("relax")
        self.phase = Phase("relax", evolve=relax.evolve, clamp=relax.clamp, dt_ms=relax.dt_ms, max_ms=relax.max_ms)
        self.p = p
        self.dtype = p["W1"].dtype
        self.backend = NumbaBackend(self.dtype.name, threads=threads)
        self.weights = {"W1": p["W1"], "W2": p["W2"], "W3": p["W3"]}
        self.biases = {"mu1": p["b1"], "mu2": p["b2"], "mu3": p["b3"]}
        for proj in self.circuit.projections:  # the one-to-one wiring, in the working dtype
            if not proj.tied and proj.name not in self.weights:
                self.weights[proj.name] = proj.weights.astype(self.dtype)
        self.batch = p["x"].shape[0]

    def field(self) -> tuple[PhaseField, dict]:
        """The phase's vector field and full state, as the simulator builds them for one relaxation."""
        p = self.p
        x0 = np.tanh(p["x"])
        state = {q.name: np.zeros((self.batch, q.size), self.dtype) for q in self.circuit.populations}
        state.update(x0=x0, x1=p["v1"], x2=p["v2"], x3=p["y"], mu1=x0 @ p["W1"].T + p["b1"])
        return PhaseField(self.circuit, self.phase, self.weights, self.biases, state, {}, np), state

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        """One whole phase: field, plan and kernel."""
        field, state = self.field()
        res = self.backend.relax(field, self.phase, {n: state[n] for n in field.integrated}, 0.0)
        return res.state["x1"], res.state["x2"]

    def kernel_runner(self) -> Runner:
        """``run()`` timing the ``relax`` call alone on a field built once."""
        field, state = self.field()
        y0 = {n: state[n] for n in field.integrated}

        def run():
            res = self.backend.relax(field, self.phase, y0, 0.0)
            return res.state["x1"], res.state["x2"]

        return run


def main() -> None:
    """Serve the ``neurosim`` and ``neurosim-kernel`` variants."""
    import numba

    problem = load_problem(sys.argv[1])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    limits = None
    if os.environ.get("NEUROSIM_BENCH_BLAS_THREADS"):
        import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS, loaded so that the limit reaches it)
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(int(os.environ["NEUROSIM_BENCH_BLAS_THREADS"]), user_api="blas")
    ns = NeurosimRelax(problem, threads)
    ns.run()  # compiles (or loads the cached kernel) and records the path taken
    import neurosim

    serve({"neurosim": ns.run, "neurosim-kernel": ns.kernel_runner()}, sys.argv[2],
          {"neurosim": getattr(neurosim, "__version__", "?"), "numba": numba.__version__, "numpy": np.__version__,
           "path": ns.backend.paths.get("relax", "")})
    del limits


if __name__ == "__main__":
    main()
