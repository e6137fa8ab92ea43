"""The numba backend: whole relaxation phases in one compiled call.

Every relaxation phase whose vector field the kernel implements (any circuit's
:class:`~neurosim.dynamics.PhaseField`: integrated and instantaneous populations, constant
drives, live terms with their weights, gains and signals, leak and tau; forward Euler or
exponential Euler; the activations linear, tanh, sigmoid, relu and leaky_relu) runs in
:func:`~neurosim.backends._numba_kernels.relax_kernel`: all steps, the residual of every
population at every step, the convergence window and the NaN/Inf check, without returning to
Python. Matrix products stay in BLAS; one-to-one projections (diagonal weights, such as the
``±I`` wiring of error neurons) are applied element-wise; large batches are split into row
blocks on numba's threads. A phase with per-step plasticity (:mod:`neurosim.online`) runs the
same kernel one step per call, handing every state to its rules. Anything else (RK4, an
activation without a compiled form, no batch-sized state ...) runs on the generic loop of
:class:`~neurosim.backends.base.Backend`. Every result's ``message`` says which path ran and
why, :attr:`NumbaBackend.paths` keeps the last one per phase, and the
``neurosim.backends.numba`` logger says it once per phase.

numba itself is imported when the backend is first instantiated, never by ``import neurosim``;
the kernels compile once per dtype (minutes on a fresh checkout) and are cached in
``__pycache__``.
"""
from __future__ import annotations

import importlib.util
import logging

import numpy as np

from ..stopping import PhaseStatus, diverged_message, divergence_bound
from .base import Backend, Diverged, RelaxResult, register_backend

__all__ = ["NumbaBackend", "numba_available"]

log = logging.getLogger("neurosim.backends.numba")


def numba_available() -> bool:
    """True when numba can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


class _SingleThreadedBlas:
    """Context: every loaded BLAS runs single-threaded (the parallel kernel's row blocks call BLAS themselves)."""

    def __init__(self):
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba calls: loaded before it is looked up)
        from threadpoolctl import ThreadpoolController

        self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
        self._saved: list[int] = []

    def __enter__(self):
        self._saved = [lib.num_threads for lib in self._libs]
        for lib in self._libs:
            lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(self._libs, self._saved):
            lib.set_num_threads(n)


class NumbaBackend(Backend):
    """numpy arrays, with relaxation phases fused into compiled kernels.

    Parameters
    ----------
    dtype : {"float64", "float32"}
    threads : int, optional
        Row blocks a step of a large batch is split into, each on its own numba thread with
        single-threaded BLAS (default: numba's thread count, for batches of at least
        ``2 * min_rows`` rows and ``min_work`` state elements). 1 keeps every step on one
        thread, with BLAS using its own threads.
    min_rows, min_work : int
        Below these a step is too small to split.

    Attributes
    ----------
    paths : dict phase name -> str
        The path the last execution of each phase took (``fused kernel ...`` or
        ``generic loop: <reason>``).
    """

    name = "numba"
    xp = np

    def __init__(self, dtype: str = "float64", threads: int | None = None, min_rows: int = 8, min_work: int = 16384):
        super().__init__(dtype)
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads={threads!r} must be None (automatic) or a positive number of row blocks")
        try:
            from . import _numba_plan
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"backend='numba' needs numba ({err}); pip install numba, or use backend='numpy'") from err
        import numba

        self._plan = _numba_plan
        self._codes = _numba_plan.K
        self._scratch = _numba_plan.Scratch()
        self.numba_version = numba.__version__
        self.paths: dict[str, str] = {}
        self.threads = numba.get_num_threads() if threads is None else int(threads)
        self.min_rows, self.min_work = int(min_rows), int(min_work)
        self._blas = None
        if self.threads > 1:
            try:
                self._blas = _SingleThreadedBlas()
            except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
                self.threads = 1

    def describe(self) -> str:
        lines = [f"numba ({self.dtype}): fused relaxation kernels, numba {self.numba_version}, BLAS products, "
                 f"up to {self.threads} row block(s) per step"]
        lines += [f"  phase {name!r}: {path}" for name, path in self.paths.items()]
        return "\n".join(lines)

    def _note(self, phase_name: str, path: str) -> None:
        if self.paths.get(phase_name) != path:
            log.info("numba backend, phase %r: %s", phase_name, path)
        self.paths[phase_name] = path

    def relax(self, field, phase, y0: dict, t0_ms: float, *, sample_populations: tuple = (),
              sample_every: int = 0, plasticity=None) -> RelaxResult:
        """Integrate one phase in the fused kernel, or on the generic loop when it cannot be fused.

        Parameters and result as :meth:`Backend.relax`; ``RelaxResult.message`` names the path.
        With ``plasticity`` (per-step rules, :mod:`neurosim.online`) the kernel runs one step per
        call and hands the state to the rules before every step, so that the phase computes with
        exactly the same arithmetic as the fused phases around it.

        Raises
        ------
        Diverged
            When a state becomes NaN/Inf, with the population, time and step (as the generic loop).
        """
        try:
            plan = self._plan.build_plan(field, phase, y0, self.dtype, self._scratch,
                                         sample_populations=tuple(sample_populations), sample_every=int(sample_every))
        except self._plan.Unsupported as why:
            path = f"generic loop: {why}"
            self._note(phase.name, path)
            result = super().relax(field, phase, y0, t0_ms, sample_populations=sample_populations,
                                   sample_every=sample_every, plasticity=plasticity)
            result.message = path
            return result
        chunks = self._chunks(plan)
        path = plan.summary + (f", batch split in {chunks} row blocks" if chunks > 1 else "")
        if plasticity is not None:
            path += ", one step per call for per-step plasticity"
        if chunks > 1:
            with self._blas:
                out = plan.run(chunks=chunks) if plasticity is None else self._stepwise(plan, plasticity, chunks)
        else:
            out = plan.run() if plasticity is None else self._stepwise(plan, plasticity, 1)
        self._note(phase.name, path)
        return self._result(plan, out, field, phase, t0_ms, tuple(sample_populations), int(sample_every), path)

    def _chunks(self, plan) -> int:
        """Row blocks for this phase: 1 unless the batch is large enough to split."""
        rows, work = plan.batch_size, plan.batch_size * plan.units
        if self.threads < 2 or rows < 2 * self.min_rows or work < self.min_work:
            return 1
        return min(self.threads, rows // self.min_rows)

    def _stepwise(self, plan, plasticity, chunks: int) -> np.ndarray:
        """Run the phase a step at a time; ``plasticity`` observes the full state before every step."""
        K = self._codes
        out = plan.run(0, 0, chunks=chunks)  # no step: the instantaneous populations at the initial state
        for k in range(plan.max_steps):
            plasticity.observe({n: u.copy() for n, u in plan.state.items()})
            out = plan.run(k, 1, held=int(out[K.R_HELD]), samples=int(out[K.R_SAMPLES]), chunks=chunks)
            if out[K.R_STATUS] != K.RUNNING:
                break
        return out

    def _result(self, plan, out, field, phase, t0_ms: float, sample_populations: tuple, sample_every: int,
                path: str) -> RelaxResult:
        K = self._codes
        steps, code, failed, n_samples = (int(out[i]) for i in (K.R_STEPS, K.R_STATUS, K.R_FAILED, K.R_SAMPLES))
        status = PhaseStatus.MAX_TIME if code == K.RUNNING else PhaseStatus.from_code(code)
        dt = phase.dt_ms
        t = t0_ms + steps * dt
        if status is PhaseStatus.DIVERGED:
            name = plan.integrated[failed]
            raise Diverged(diverged_message(name, t, steps, phase.name, divergence_bound(self.dtype)),
                           population=name, time_ms=t, step=steps)
        samples: dict[str, list] = {p: [] for p in sample_populations}
        sample_t: list[float] = []
        if sample_every and sample_populations:
            sample_t = [t0_ms + (i + 1) * sample_every * dt for i in range(n_samples)]
            for p in sample_populations:
                buf = plan.sample_buffers.get(p)
                if buf is not None:
                    samples[p] = [buf[i] for i in range(n_samples)]
                else:
                    held = self.to_host(field.frozen[p])
                    samples[p] = [held.copy() for _ in range(n_samples)]
        residuals = plan.residuals[:steps]
        return RelaxResult(
            state=plan.state, steps=steps, t_end_ms=t, converged=status is PhaseStatus.CONVERGED, status=status,
            residual=float(residuals[steps - 1].max()) if plan.integrated and steps else 0.0,
            residuals=residuals, residual_populations=plan.integrated, sample_t_ms=sample_t, samples=samples,
            message=path,
        )


def _factory(dtype: str) -> Backend:
    return NumbaBackend(dtype)


if numba_available():
    register_backend("numba", _factory)
