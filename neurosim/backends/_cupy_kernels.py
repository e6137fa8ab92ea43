"""Fused element-wise kernels of a relaxation step: CUDA source and their numpy twins.

Every kernel exists twice with the same signature and the same arithmetic, operation by
operation (the CUDA source is compiled with ``--fmad=false`` so that no multiply-add is
contracted):

* :class:`DeviceKernels` launches the CUDA kernels (``cupy.RawModule``) on CuPy arrays;
* :class:`HostKernels` is the numpy twin: it defines what each kernel computes and lets the
  device loop (:mod:`neurosim.backends._device_loop`) be tested on machines without a GPU.

The drive of a population at one evaluation is assembled from up to five parts, each optional
(``None`` is a null pointer on the device):

``drive = c + acc + gain ⊙ gacc + s0 ⊙ d0 + s1 ⊙ d1``

``c`` (B, n) the constant drive (bias, inputs, frozen presynaptic terms); ``acc`` (B, n) the
sum of the ungated matrix products (cuBLAS, accumulated in place); ``gacc`` (B, n) the sum of
the products sharing one gain ``gain`` (B, n); ``s0``, ``s1`` (B, n) presynaptic signals of
diagonal projections with diagonals ``d0``, ``d1`` (n,). Further gain groups and diagonal
terms are folded into ``acc`` with :meth:`fold`.

Residuals: :meth:`update` writes, per population, the maxima of ``|u_new - u|`` and ``|u_new|``
over the batch and units into a two-element scratch. On the device these are the IEEE bit
patterns of the absolute values, reduced with integer ``atomicMax``: for non-negative floats
the integer order is the float order and NaN sorts above ``+inf``, so a NaN anywhere survives
the reduction (as it does through numpy's ``max``). :meth:`converge` turns the scratch into the
residual ``max|Δu| · tau / dt`` of every population, decides convergence exactly like
:meth:`neurosim.backends.base.Backend.relax`, and clears the scratch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..activations import ACTIVATIONS, by_code, c_expression
from ..stopping import RUNNING, PhaseStatus, advance_window, divergence_bound, diverging, residual, within_tolerance

__all__ = ["ACTIVATION_CODES", "MODE_EULER", "MODE_EXP", "MODE_EXP_NOLEAK", "MODE_COMMIT", "CTL_RUNNING",
           "CTL_CONVERGED", "CTL_DIVERGED", "CTL_MAX_STEPS", "CTL_FIELDS", "cuda_source",
           "HostKernels", "DeviceKernels"]

ACTIVATION_CODES = {a.name: a.code for a in ACTIVATIONS.values() if a.code is not None and a.rate_expr is not None}
"""Activations with a CUDA twin: every built-in one, written from the expressions of :mod:`neurosim.activations`."""

MODE_EULER, MODE_EXP, MODE_EXP_NOLEAK, MODE_COMMIT = 0, 1, 2, 3
"""Update modes: forward Euler; exponential Euler (leak > 0; without leak); copy a given new state."""

CTL_RUNNING, CTL_CONVERGED, CTL_DIVERGED, CTL_MAX_STEPS = (RUNNING, PhaseStatus.CONVERGED.code,
                                                          PhaseStatus.DIVERGED.code, PhaseStatus.MAX_TIME.code)
"""Values of the control word's status (the codes of :class:`neurosim.stopping.PhaseStatus`)."""
CTL_FIELDS = 4
"""The control word (int32): status, steps the criterion has held, steps taken, population that diverged."""

_BLOCK = 256

_SOURCE = r"""
// neurosim: fused kernels of one relaxation step (see neurosim/backends/_cupy_kernels.py).
typedef @REAL@ real_t;
typedef @BITS@ bits_t;
#define ABS(x) @ABS@(x)
#define TANH(x) @TANH@(x)
#define AS_BITS(x) ((bits_t)@AS_BITS@(x))
#define FROM_BITS(b) @FROM_BITS@(b)
#define BOUND @BOUND@

@ACTIVATIONS@
__device__ __forceinline__ real_t drive_at(
        const long long i, const long long n_cols, const real_t* c, const real_t* acc, const real_t* gain,
        const real_t* gacc, const real_t* s0, const real_t* d0, const real_t* s1, const real_t* d1) {
    real_t total = (real_t)0.0;
    if (c) total = c[i];
    if (acc) total = total + acc[i];
    if (gacc) total = total + gain[i] * gacc[i];
    if (s0) total = total + s0[i] * d0[i % n_cols];
    if (s1) total = total + s1[i] * d1[i % n_cols];
    return total;
}

__device__ __forceinline__ void write_signals(const long long i, const int act, const real_t v, real_t* r_out,
                                              real_t* df_out) {
    if (r_out) r_out[i] = act_f(act, v);
    if (df_out) df_out[i] = act_df(act, v);
}

__device__ __forceinline__ bits_t warp_max(bits_t v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const bits_t other = __shfl_down_sync(0xffffffffu, v, offset);
        v = other > v ? other : v;
    }
    return v;
}

// u <- u_new in place, with signals of u_new and the residual maxima; skipped once stopped.
extern "C" __global__ void ns_update(
        const long long n, const long long n_cols, real_t* u,
        const real_t* c, const real_t* acc, const real_t* gain, const real_t* gacc,
        const real_t* s0, const real_t* d0, const real_t* s1, const real_t* d1,
        const int mode, const real_t dt, const real_t tau, const real_t leak, const int leak_is_one,
        const real_t decay, const real_t coef, const int act, real_t* r_out, real_t* df_out,
        const int* ctl, bits_t* res_bits) {
    if (ctl[0] != 0) return;
    bits_t dmax = 0, umax = 0;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const real_t u0 = u[i];
        real_t un;
        if (mode == 3) {
            un = acc[i];
        } else {
            const real_t drive = drive_at(i, n_cols, c, acc, gain, gacc, s0, d0, s1, d1);
            if (mode == 0) {
                const real_t du = leak_is_one ? drive - u0 : drive - leak * u0;
                un = u0 + dt * (du / tau);
            } else if (mode == 1) {
                un = decay * u0 + coef * (drive / tau);
            } else {
                un = u0 + dt * (drive / tau);
            }
        }
        u[i] = un;
        write_signals(i, act, un, r_out, df_out);
        const bits_t d = AS_BITS(ABS(un - u0));
        const bits_t m = AS_BITS(ABS(un));
        dmax = d > dmax ? d : dmax;
        umax = m > umax ? m : umax;
    }
    dmax = warp_max(dmax);
    umax = warp_max(umax);
    if ((threadIdx.x & 31) == 0) {
        if (dmax) atomicMax(&res_bits[0], dmax);
        if (umax) atomicMax(&res_bits[1], umax);
    }
}

// value of an instantaneous population, drive / leak, with its signals
extern "C" __global__ void ns_instant(
        const long long n, const long long n_cols, real_t* out,
        const real_t* c, const real_t* acc, const real_t* gain, const real_t* gacc,
        const real_t* s0, const real_t* d0, const real_t* s1, const real_t* d1,
        const real_t leak, const int leak_is_one, const int act, real_t* r_out, real_t* df_out) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const real_t drive = drive_at(i, n_cols, c, acc, gain, gacc, s0, d0, s1, d1);
        const real_t v = leak_is_one ? drive : drive / leak;
        out[i] = v;
        write_signals(i, act, v, r_out, df_out);
    }
}

// rate and slope of a state
extern "C" __global__ void ns_signals(const long long n, const real_t* u, const int act, real_t* r_out,
                                      real_t* df_out) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        write_signals(i, act, u[i], r_out, df_out);
    }
}

// acc <- (init ? 0 : acc) + a * b, with b (n,) broadcast over rows when b_is_row
extern "C" __global__ void ns_fold(const long long n, const long long n_cols, real_t* acc, const int init,
                                   const real_t* a, const real_t* b, const int b_is_row) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const real_t prod = a[i] * (b_is_row ? b[i % n_cols] : b[i]);
        acc[i] = init ? prod : acc[i] + prod;
    }
}

// one thread: residuals of step ctl[2], NaN/Inf check, convergence window; clears the scratch
extern "C" __global__ void ns_converge(
        int* ctl, bits_t* bits, double* res, const int n_pops, const double* tau_ms, const double dt,
        const int has_crit, const double atol, const double rtol, const int window, const int max_steps) {
    if (threadIdx.x != 0 || blockIdx.x != 0 || ctl[0] != 0) return;
    const int k = ctl[2];
    int ok = 1;
    for (int j = 0; j < n_pops; ++j) {
        const double m = (double)FROM_BITS(bits[2 * j]);
        const double s = (double)FROM_BITS(bits[2 * j + 1]);
        bits[2 * j] = 0;
        bits[2 * j + 1] = 0;
        const double r = m * tau_ms[j] / dt;
        res[(long long)k * n_pops + j] = r;
        if (!(r <= BOUND && s <= BOUND)) {  // NaN, Inf or beyond sqrt(max float): diverged (neurosim.stopping)
            for (int q = j + 1; q < n_pops; ++q) { bits[2 * q] = 0; bits[2 * q + 1] = 0; }
            ctl[0] = 2; ctl[2] = k + 1; ctl[3] = j;
            return;
        }
        if (has_crit && ok) ok = r <= atol + rtol * s;
    }
    ctl[2] = k + 1;
    if (has_crit) {
        ctl[1] = ok ? ctl[1] + 1 : 0;
        if (ctl[1] >= window) { ctl[0] = 1; return; }
    }
    if (k + 1 >= max_steps) ctl[0] = 3;
}
"""

_TYPES = {
    "float64": {"REAL": "double", "BITS": "unsigned long long", "ABS": "fabs", "TANH": "tanh",
                "AS_BITS": "__double_as_longlong", "FROM_BITS": "__longlong_as_double"},
    "float32": {"REAL": "float", "BITS": "unsigned int", "ABS": "fabsf", "TANH": "tanhf",
                "AS_BITS": "__float_as_uint", "FROM_BITS": "__uint_as_float"},
}

KERNEL_NAMES = ("ns_update", "ns_instant", "ns_signals", "ns_fold", "ns_converge")
COMPILE_OPTIONS = ("--fmad=false",)


def _activation_source() -> str:
    """``act_f`` and ``act_df``: one ``case`` per activation, from the expressions of the activation table."""
    rates, slopes = [], []
    for name, code in sorted(ACTIVATION_CODES.items(), key=lambda item: item[1]):
        act = ACTIVATIONS[name]
        rates.append(f"    case {code}: return {c_expression(act.rate('a'))};  // {name}")
        slopes.append(f"    case {code}: return {c_expression(act.slope('a'))};  // {name}")
    body = "\n".join
    return (
        "__device__ __forceinline__ real_t act_f(const int act, const real_t a) {\n    switch (act) {\n"
        + body(rates) + "\n    default: return a;\n    }\n}\n\n"
        "__device__ __forceinline__ real_t act_df(const int act, const real_t a) {\n    switch (act) {\n"
        + body(slopes) + "\n    default: return (real_t)1.0;\n    }\n}\n"
    )


def cuda_source(dtype: str) -> str:
    """The CUDA source of the kernels for ``dtype`` (``float64`` or ``float32``)."""
    try:
        subs = dict(_TYPES[str(np.dtype(dtype))], ACTIVATIONS=_activation_source(),
                    BOUND=repr(divergence_bound(dtype)))
    except KeyError:
        raise ValueError(f"dtype={dtype!r} must be 'float64' or 'float32'") from None
    src = _SOURCE
    for key, value in subs.items():
        src = src.replace(f"@{key}@", value)
    if "@" in src:
        raise AssertionError("unsubstituted placeholder in the CUDA source")
    return src


# -- numpy twins ---------------------------------------------------------------------------------

def _act_f(act: int, a: np.ndarray) -> np.ndarray:
    return np.array(by_code(act).f(a), dtype=a.dtype)


def _act_df(act: int, a: np.ndarray) -> np.ndarray:
    return np.array(by_code(act).df(a), dtype=a.dtype)


def _drive(like: np.ndarray, drive: tuple) -> np.ndarray:
    c, acc, gain, gacc, s0, d0, s1, d1 = drive
    total = np.zeros_like(like)
    if c is not None:
        total = c.copy()
    if acc is not None:
        total = total + acc
    if gacc is not None:
        total = total + gain * gacc
    if s0 is not None:
        total = total + s0 * d0
    if s1 is not None:
        total = total + s1 * d1
    return total


def _signals(act: int, v: np.ndarray, r_out, df_out) -> None:
    if r_out is not None:
        r_out[...] = _act_f(act, v)
    if df_out is not None:
        df_out[...] = _act_df(act, v)


class HostKernels:
    """numpy twins of the CUDA kernels (same signatures, same operation order)."""

    def update(self, u, drive: tuple, mode: int, dt, tau, leak, leak_is_one: bool, decay, coef, act: int,
               r_out, df_out, ctl, res_bits) -> None:
        """Advance ``u`` (B, n) in place by one step; see the module docstring."""
        if ctl[0] != CTL_RUNNING:
            return
        t = u.dtype.type
        dt, tau, leak, decay, coef = t(dt), t(tau), t(leak), t(decay), t(coef)
        u0 = u.copy()
        if mode == MODE_COMMIT:
            un = drive[1]
        else:
            d = _drive(u0, drive)
            if mode == MODE_EULER:
                du = d - u0 if leak_is_one else d - leak * u0
                un = u0 + dt * (du / tau)
            elif mode == MODE_EXP:
                un = decay * u0 + coef * (d / tau)
            else:
                un = u0 + dt * (d / tau)
        u[...] = un
        _signals(act, u, r_out, df_out)
        res_bits[0] = max(res_bits[0], np.max(np.abs(u - u0)), key=_nan_first)
        res_bits[1] = max(res_bits[1], np.max(np.abs(u)), key=_nan_first)

    def instant(self, out, drive: tuple, leak, leak_is_one: bool, act: int, r_out, df_out) -> None:
        """``out = drive / leak`` (B, n) and its signals."""
        d = _drive(out, drive)
        out[...] = d if leak_is_one else d / out.dtype.type(leak)
        _signals(act, out, r_out, df_out)

    def signals(self, u, act: int, r_out, df_out) -> None:
        """Rate and slope of ``u``."""
        _signals(act, u, r_out, df_out)

    def fold(self, acc, init: bool, a, b, b_is_row: bool) -> None:
        """``acc = (0 if init else acc) + a * b``."""
        prod = a * b
        acc[...] = prod if init else acc + prod

    def converge(self, ctl, bits, res, tau_ms, dt: float, has_crit: bool, atol: float, rtol: float, window: int,
                 max_steps: int) -> None:
        """Residuals of the step just taken, NaN/Inf check, convergence window (one thread on the device)."""
        if ctl[0] != CTL_RUNNING:
            return
        k = int(ctl[2])
        ok = True
        bound = divergence_bound(bits.dtype)
        for j in range(bits.shape[0]):
            m, s = float(bits[j, 0]), float(bits[j, 1])
            bits[j] = 0
            r = residual(m, float(tau_ms[j]), dt)
            res[k, j] = r
            if diverging(r, s, bound):
                bits[j + 1:] = 0
                ctl[0], ctl[2], ctl[3] = CTL_DIVERGED, k + 1, j
                return
            if has_crit and ok:
                ok = within_tolerance(r, s, atol, rtol)
        ctl[2] = k + 1
        if has_crit:
            ctl[1] = advance_window(int(ctl[1]), ok)
            if ctl[1] >= window:
                ctl[0] = CTL_CONVERGED
                return
        if k + 1 >= max_steps:
            ctl[0] = CTL_MAX_STEPS


def _nan_first(x) -> float:
    """Sort key making NaN the largest value (the order of the device's bit patterns)."""
    return float("inf") if np.isnan(x) else float(x)


# -- CUDA ------------------------------------------------------------------------------------------

class DeviceKernels:
    """The CUDA kernels, compiled once per dtype and device, launched on the current stream.

    Parameters
    ----------
    cupy : module
    dtype : numpy dtype
    """

    def __init__(self, cupy: Any, dtype: np.dtype):
        self._cp = cupy
        self._t = np.dtype(dtype).type
        module = cupy.RawModule(code=cuda_source(str(np.dtype(dtype))), options=COMPILE_OPTIONS)
        self._fn = {name: module.get_function(name) for name in KERNEL_NAMES}  # compiles now, not in a capture
        sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
        self._max_blocks = 8 * int(sms)

    def _grid(self, n: int) -> tuple[int]:
        return (max(1, min(-(-n // _BLOCK), self._max_blocks)),)

    def update(self, u, drive: tuple, mode: int, dt, tau, leak, leak_is_one: bool, decay, coef, act: int,
               r_out, df_out, ctl, res_bits) -> None:
        t = self._t
        n = u.size
        self._fn["ns_update"](self._grid(n), (_BLOCK,), (
            np.int64(n), np.int64(u.shape[-1]), u, *drive, np.int32(mode), t(dt), t(tau), t(leak),
            np.int32(leak_is_one), t(decay), t(coef), np.int32(act), r_out, df_out, ctl, res_bits))

    def instant(self, out, drive: tuple, leak, leak_is_one: bool, act: int, r_out, df_out) -> None:
        n = out.size
        self._fn["ns_instant"](self._grid(n), (_BLOCK,), (
            np.int64(n), np.int64(out.shape[-1]), out, *drive, self._t(leak), np.int32(leak_is_one),
            np.int32(act), r_out, df_out))

    def signals(self, u, act: int, r_out, df_out) -> None:
        n = u.size
        self._fn["ns_signals"](self._grid(n), (_BLOCK,), (np.int64(n), u, np.int32(act), r_out, df_out))

    def fold(self, acc, init: bool, a, b, b_is_row: bool) -> None:
        n = acc.size
        self._fn["ns_fold"](self._grid(n), (_BLOCK,), (
            np.int64(n), np.int64(acc.shape[-1]), acc, np.int32(init), a, b, np.int32(b_is_row)))

    def converge(self, ctl, bits, res, tau_ms, dt: float, has_crit: bool, atol: float, rtol: float, window: int,
                 max_steps: int) -> None:
        self._fn["ns_converge"]((1,), (1,), (
            ctl, bits, res, np.int32(bits.shape[0]), tau_ms, np.float64(dt), np.int32(has_crit), np.float64(atol),
            np.float64(rtol), np.int32(window), np.int32(max_steps)))
