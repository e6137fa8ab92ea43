"""The CuPy backend: the same schedules on a CUDA GPU.

Arrays (weights, biases, states, batch data) live on the device for the whole run; only the
results a caller reads (updates, outputs, final states, samples, residual histories) are
copied to the host, so only host arrays ever reach a trace. Relaxation phases run
:func:`~neurosim.backends._device_loop.relax_on_device`: matrix products in cuBLAS, the
element-wise work of each step fused into one CUDA kernel per population
(:mod:`~neurosim.backends._cupy_kernels`), convergence and NaN/Inf checks on the device, and
no blocking host transfer until the phase ends.

This module imports without CuPy; constructing :class:`CupyBackend` needs CuPy and a CUDA
device and raises :class:`CupyUnavailable` (an ``ImportError``) with the reason otherwise.
"""
from __future__ import annotations

import logging
import warnings
from collections import deque
from typing import Any, Callable

import numpy as np

from ._cupy_kernels import CTL_RUNNING, DeviceKernels
from ._device_loop import HostRuntime, LoopOptions, relax_on_device
from .base import Backend, RelaxResult

__all__ = ["CupyBackend", "CupyRuntime", "CupyUnavailable", "cupy_unavailable_reason", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'neurosim[cupy]'"
log = logging.getLogger("neurosim.backends.cupy")


class CupyUnavailable(ImportError):
    """``backend="cupy"`` was asked for on a machine without CuPy or without a CUDA device."""


def cupy_unavailable_reason() -> str | None:
    """Why the cupy backend cannot run here (None when CuPy imports and sees a CUDA device)."""
    try:
        import cupy
    except Exception as err:  # ImportError, or a broken CUDA installation raising at import
        return f"cannot import cupy ({type(err).__name__}: {err})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # CUDARuntimeError: no driver, driver too old, no device
        return f"the CUDA runtime reports an error ({type(err).__name__}: {err})"
    if count < 1:
        return "cupy sees no CUDA device (getDeviceCount() == 0)"
    return None


def _require_cupy():
    reason = cupy_unavailable_reason()
    if reason is not None:
        raise CupyUnavailable(
            f"the cupy backend needs a CUDA GPU and the cupy package: {INSTALL_HINT}; no GPU/cupy was found: {reason}"
        )
    import cupy

    return cupy


class CupyBackend(Backend):
    """Backend on CuPy arrays with the fused device relaxation loop.

    Parameters
    ----------
    dtype : {"float64", "float32"}
    max_ahead : int
        Most unfinished polls of the device's control word while the host queues further steps
        (see :class:`~neurosim.backends._device_loop.LoopOptions`).
    graph_steps : int
        Steps per captured CUDA graph in long fused phases (0: launch every kernel eagerly).
    eager_steps : int
        Steps run eagerly before a phase switches to graph replays.
    runtime : HostRuntime, optional
        Run the same loop on another runtime instead of CUDA; :class:`HostRuntime` executes the
        kernels' numpy twins on the CPU (tests of the loop on machines without a GPU).

    Attributes
    ----------
    paths : dict phase name -> str
        The path the last execution of each phase took (also in ``RelaxResult.message``).

    Raises
    ------
    CupyUnavailable
        Without CuPy or without a CUDA device (when ``runtime`` is not given).
    """

    name = "cupy"

    def __init__(self, dtype: str = "float64", *, max_ahead: int = 4, graph_steps: int = 8, eager_steps: int = 32,
                 runtime: HostRuntime | None = None):
        super().__init__(dtype)
        self.options = LoopOptions(max_ahead=max_ahead, graph_steps=graph_steps, eager_steps=eager_steps)
        if runtime is None:
            runtime = CupyRuntime(_require_cupy(), self.dtype)
        elif np.dtype(runtime.dtype) != self.dtype:
            raise ValueError(f"runtime dtype {runtime.dtype} differs from dtype={dtype!r}; build both with one dtype")
        self.runtime = runtime
        self.xp = runtime.xp
        self.paths: dict[str, str] = {}

    def asarray(self, a: Any):
        return self.xp.asarray(a, dtype=self.dtype)

    def to_host(self, a: Any) -> np.ndarray:
        if self.xp is not np and isinstance(a, self.xp.ndarray):
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def describe(self) -> str:
        return f"{self.name} ({self.dtype}, {self.runtime.name})"

    def one_to_one(self, matrices: list) -> list:
        """One-to-one detection for the phase program, batched on the runtime (one synchronisation)."""
        return self.runtime.diagonals(matrices)

    def relax(self, field, phase, y0: dict, t0_ms: float, *, sample_populations: tuple = (),
              sample_every: int = 0, plasticity=None) -> RelaxResult:
        """Run one phase on the device (see :meth:`Backend.relax` for the contract).

        ``RelaxResult.message`` names the path taken. Phases without an integrated population
        and phases with online plasticity run the generic loop of :class:`Backend` on device
        arrays (one host synchronisation per step).
        """
        if plasticity is not None or not field.integrated:
            why = "online plasticity" if plasticity is not None else "no integrated population"
            kw = {} if plasticity is None else {"plasticity": plasticity}
            result = super().relax(field, phase, y0, t0_ms, sample_populations=sample_populations,
                                   sample_every=sample_every, **kw)
            result.message = f"generic loop ({why})"
        else:
            result = relax_on_device(self.runtime, field, phase, y0, t0_ms, sample_populations=sample_populations,
                                     sample_every=sample_every, options=self.options)
        if self.paths.get(phase.name) != result.message:
            log.info("cupy backend, phase %r: %s", phase.name, result.message)
        self.paths[phase.name] = result.message
        return result


class CupyRuntime:
    """The device runtime of :func:`relax_on_device` on CUDA through CuPy.

    A phase's work is queued on a dedicated non-blocking stream that first waits for the
    caller's current stream; every buffer that outlives a phase is allocated on the caller's
    stream, and the phase ends with a synchronisation of its stream, so results are safe to
    use on any stream afterwards.

    Parameters
    ----------
    cupy : module
    dtype : numpy dtype
    """

    def __init__(self, cupy: Any, dtype: Any):
        import cupy.cublas  # noqa: F401  (loads cuBLAS)
        import cupyx

        self.cp = cupy
        self.xp = cupy
        self._cupyx = cupyx
        self.dtype = np.dtype(dtype)
        self.kernels = DeviceKernels(cupy, self.dtype)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        self.name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        self._bits = np.uint64 if self.dtype == np.float64 else np.uint32
        self._polls: deque = deque()
        self._status = CTL_RUNNING
        self._warned = False

    # arrays
    def empty(self, shape: tuple, dtype: Any = None):
        return self.cp.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def zeros(self, shape: tuple, dtype: Any = None):
        return self.cp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def residual_scratch(self, n_pops: int):
        return self.cp.zeros((n_pops, 2), dtype=self._bits)

    def array(self, a: Any, dtype: Any):
        return self.cp.array(a, dtype=dtype)

    def contiguous(self, a: Any, shape: tuple | None = None):
        a = self.cp.asarray(a, dtype=self.dtype)
        return self.cp.ascontiguousarray(a if shape is None else self.cp.broadcast_to(a, shape))

    def gemm(self, a, b, out, accumulate: bool) -> None:
        self.cp.cublas.gemm("N", "N", a, b, out=out, alpha=1.0, beta=1.0 if accumulate else 0.0)

    def diagonals(self, mats: list) -> list:
        cp = self.cp
        if not mats:
            return []
        offdiag = cp.stack([cp.count_nonzero(w) - cp.count_nonzero(cp.diagonal(w)) for w in mats]).get()
        return [cp.ascontiguousarray(cp.diagonal(w)) if n == 0 else None for w, n in zip(mats, offdiag)]

    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    # stream
    def running(self):
        return _OnStream(self.cp, self.stream)

    def poll(self, ctl) -> None:
        host = self._cupyx.empty_pinned(ctl.shape, ctl.dtype)
        self._copy_async(host, ctl)
        event = self.cp.cuda.Event(block=False, disable_timing=True)
        event.record(self.stream)
        self._polls.append((host, event))

    def status(self) -> int:
        while self._polls and self._polls[0][1].done:
            self._status = int(self._polls.popleft()[0][0])
        return self._status

    def throttle(self, outstanding: int) -> None:
        while len(self._polls) > outstanding:
            host, event = self._polls.popleft()
            event.synchronize()
            self._status = int(host[0])

    def to_host_async(self, a) -> np.ndarray:
        host = self._cupyx.empty_pinned(a.shape, a.dtype)
        self._copy_async(host, self.cp.ascontiguousarray(a))
        return host

    def _copy_async(self, host: np.ndarray, dev) -> None:
        rt = self.cp.cuda.runtime
        rt.memcpyAsync(host.ctypes.data, dev.data.ptr, dev.nbytes, rt.memcpyDeviceToHost, self.stream.ptr)

    def capture(self, fn: Callable[[], None]) -> Callable[[], None] | None:
        """A CUDA graph of ``fn``'s kernels and cuBLAS calls, or None (eager launches) if capture fails."""
        try:
            self.stream.begin_capture()
            try:
                fn()
            finally:
                graph = self.stream.end_capture()
        except Exception as err:  # capture unsupported here: fall back to eager launches, say so once
            if not self._warned:
                warnings.warn(f"cupy backend: CUDA graph capture failed ({type(err).__name__}: {err}); "
                              f"launching kernels eagerly (set graph_steps=0 to silence this)", RuntimeWarning,
                              stacklevel=2)
                self._warned = True
            return None
        stream = self.stream
        return lambda: graph.launch(stream)

    def finish(self) -> None:
        self.stream.synchronize()
        self._polls.clear()
        self._status = CTL_RUNNING


class _OnStream:
    """Queue work on ``stream`` after everything already queued on the caller's current stream."""

    def __init__(self, cupy: Any, stream: Any):
        self._cp = cupy
        self._stream = stream

    def __enter__(self):
        ready = self._cp.cuda.Event(block=False, disable_timing=True)
        ready.record(self._cp.cuda.get_current_stream())
        self._stream.wait_event(ready)
        self._stream.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._stream.__exit__(*exc)
