"""Compiled kernels of the numba backend: one call runs a whole relaxation phase.

The phase arrives as tables built by :mod:`neurosim.backends._numba_plan` (see its docstring
for the layout): every array is passed by address in an address table, so that one compiled
kernel per dtype serves every circuit, every size and every step count, and a call costs no
boxing of lists. Matrix products go to BLAS through ``np.dot`` (scipy's OpenBLAS); everything
else (drives, activations, the Euler update, residuals, the convergence window, the NaN/Inf
check) is fused into row-wise loops that LLVM vectorises.

Activations are the engine's (:mod:`neurosim.activations`), with ``tanh`` computed by a
vectorisable rational/exponential approximation (float64: at most 3 ulp from numpy's; float32:
the Eigen rational approximation, a few ulp), because numba's scalar ``tanh`` is a libm call per
element.

Everything compiles with ``cache=True``: the first use in a fresh checkout compiles for about a
minute, later processes load the machine code from ``__pycache__``.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .. import stopping
from ..activations import ACTIVATIONS
from ..stopping import RUNNING as _RUNNING, PhaseStatus

__all__ = ["relax_kernel", "relax_kernel_parallel", "is_diagonal", "fast_tanh"]

# -- codes shared with _numba_plan -------------------------------------------------------------
# activation codes of neurosim.activations (the table's ``code``)
LINEAR, TANH, SIGMOID, RELU, LEAKY_RELU, LEAKY_RELU_INVERSE = (ACTIVATIONS[n].code for n in (
    "linear", "tanh", "sigmoid", "relu", "leaky_relu", "leaky_relu_inverse"))
DENSE, DENSE_T, DIAG = 0, 1, 2
EULER, EXP_EULER = 0, 1
# phase status (neurosim.stopping)
RUNNING, CONVERGED, DIVERGED, MAX_TIME = (_RUNNING, PhaseStatus.CONVERGED.code, PhaseStatus.DIVERGED.code,
                                          PhaseStatus.MAX_TIME.code)
# Column names of the int64 tables, in order; the plan writes rows by name, the kernels read the indices below.
# slots: array ids of u, rate, slope; activation; whether the kernel computes rate / slope
SLOT_COLUMNS = ("u", "rate", "slope", "act", "compute_rate", "compute_slope")
S_U, S_R, S_D, S_ACT, S_RATE, S_SLOPE = range(len(SLOT_COLUMNS))
# populations: slot, drive accumulator, constant drive (-1: none), term range, leak == 1, exp-Euler decay,
# static (an instantaneous population without live terms: constant for the whole phase)
POP_COLUMNS = ("slot", "acc", "const", "t0", "t1", "leak_one", "decay", "static")
P_SLOT, P_ACC, P_CONST, P_T0, P_T1, P_LEAK_ONE, P_DECAY, P_STATIC = range(len(POP_COLUMNS))
# terms: presynaptic signal, mode, weights (or diagonal), product buffer, gain (-1: none)
TERM_COLUMNS = ("pre", "mode", "weights", "product", "gain")
T_PRE, T_MODE, T_W, T_TMP, T_GAIN = range(len(TERM_COLUMNS))
# per-population parameters in the state dtype
FPAR_COLUMNS = ("leak", "tau", "dt", "c1", "c2")
F_LEAK, F_TAU, F_DT, F_C1, F_C2 = range(len(FPAR_COLUMNS))
# scalar constants in the state dtype
C_ZERO, C_HALF, C_ONE, C_SLOPE = 0, 1, 2, 3
# integer options: the call runs steps FIRST .. FIRST + STEPS - 1 of the phase, entering with HELD
# consecutive converged steps and SAMPLES0 samples stored
IOPT_COLUMNS = ("integrator", "steps", "has_crit", "window", "sample_every", "n_inst", "n_int", "sample_inst", "first",
                "held", "samples0", "chunks", "batch")
(O_INTEGRATOR, O_STEPS, O_HAS_CRIT, O_WINDOW, O_SAMPLE_EVERY, O_N_INST, O_N_INT, O_SAMPLE_INST, O_FIRST, O_HELD,
 O_SAMPLES0, O_CHUNKS, O_BATCH) = range(len(IOPT_COLUMNS))
# kernel result
R_STEPS, R_STATUS, R_FAILED, R_SAMPLES, R_HELD = range(5)
# float64 options
D_DT, D_RTOL, D_ATOL, D_BOUND = 0, 1, 2, 3

_KW = dict(cache=True, nogil=True, error_model="numpy")

# the one stopping rule (neurosim.stopping), compiled
_residual = njit(inline="always", **_KW)(stopping.residual)
_within_tolerance = njit(inline="always", **_KW)(stopping.within_tolerance)
_advance_window = njit(inline="always", **_KW)(stopping.advance_window)
_diverging = njit(inline="always", **_KW)(stopping.diverging)


# -- low-level helpers ---------------------------------------------------------------------------
@intrinsic
def _pointer(typingctx, address, like):
    """``address`` (int64) as a typed pointer to ``like.dtype``."""
    if not isinstance(like, types.Array) or not isinstance(address, types.Integer):
        return None
    ptr_type = types.CPointer(like.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr_type))

    return ptr_type(address, like), codegen


@intrinsic
def _bits(typingctx, x):
    """The bit pattern of a float as a signed integer of the same width."""
    if not isinstance(x, types.Float):
        return None
    int_type = types.int64 if x.bitwidth == 64 else types.int32

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(int_type))

    return int_type(x), codegen


@intrinsic
def _from_bits(typingctx, i, like):
    """The float (of ``like``'s type) whose bit pattern is the integer ``i``."""
    if not isinstance(like, types.Float) or not isinstance(i, types.Integer) or i.bitwidth != like.bitwidth:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(like))

    return like(i, like), codegen


@njit(inline="always", **_KW)
def _view(addrs, rows, cols, k, like):
    """Array ``k`` of the address table as a C-contiguous 2-D view of ``like``'s dtype."""
    return numba.carray(_pointer(addrs[k], like), (rows[k], cols[k]))


# -- tanh ------------------------------------------------------------------------------------------
# float64: Cephes tanh (|x| < 0.625) and (e^2x - 1)/(e^2x + 1) with a Cephes exp, one division.
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1, _EQ2, _EQ3 = 3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.0
_LOG2E, _LN2_HI, _LN2_LO = 1.4426950408889634073599, 6.93145751953125e-1, 1.42860682030941723212e-6
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer kept in the low mantissa bits


@njit(**_KW)
def _tanh64(x):
    a = abs(x)
    z = x * x
    q_small = ((z + _TQ0) * z + _TQ1) * z + _TQ2
    n_small = x * q_small + x * z * ((_TP0 * z + _TP1) * z + _TP2)
    u = min(a, 22.0) * 2.0  # e^2a; tanh(22) rounds to 1
    k = u * _LOG2E + _ROUND
    n = k - _ROUND
    r = u - n * _LN2_HI - n * _LN2_LO
    rr = r * r
    px = r * ((_EP0 * rr + _EP1) * rr + _EP2)
    qx = ((_EQ0 * rr + _EQ1) * rr + _EQ2) * rr + _EQ3
    two_n = _from_bits((_bits(k) + 1023) << 52, k)  # 2**n from the integer in k's mantissa
    big_p = two_n * (qx + px)  # e^2a = 2**n (qx + px) / (qx - px)
    big_m = qx - px
    n_big = big_p - big_m
    if x < 0.0:
        n_big = -n_big
    if a >= 0.625:  # NaN takes the small branch and stays NaN
        return n_big / (big_p + big_m)
    return n_small / q_small


# float32: Eigen's generic_fast_tanh_float rational approximation on [-7.9, 7.9].
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
_A7, _A9, _A11 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
_CLAMP, _TINY = np.float32(7.90531110763549805), np.float32(0.0004)


@njit(**_KW)
def _tanh32(x):
    xc = min(max(x, -_CLAMP), _CLAMP)
    z = xc * xc
    p = xc * ((((((_A13 * z + _A11) * z + _A9) * z + _A7) * z + _A5) * z + _A3) * z + _A1)
    q = ((_B6 * z + _B4) * z + _B2) * z + _B0
    if abs(x) >= _TINY:  # NaN and tiny |x| return x itself
        return p / q
    return x


def fast_tanh(x):
    """``tanh(x)`` for a float32 or float64 scalar, vectorisable inside compiled loops."""
    return np.tanh(x)


@overload(fast_tanh, jit_options=_KW)
def _fast_tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _tanh32(x)
    if isinstance(x, types.Float):
        return lambda x: _tanh64(x)
    return None


# -- activations, row by row -----------------------------------------------------------------------
@njit(**_KW)
def _signals_row(act, u, r, d, rate, slope, c):
    """Rate ``r = f(u)`` and/or slope ``d = f'(u)`` of one row (formulas of neurosim.activations).

    Only the outputs asked for (``rate``, ``slope``) are written.
    """
    zero, half, one, leak_slope = c[C_ZERO], c[C_HALF], c[C_ONE], c[C_SLOPE]
    n = u.shape[0]
    if act == TANH:
        if rate and slope:
            for i in range(n):
                t = fast_tanh(u[i])
                r[i] = t
                d[i] = one - t * t
        elif slope:
            for i in range(n):
                t = fast_tanh(u[i])
                d[i] = one - t * t
        elif rate:
            for i in range(n):
                r[i] = fast_tanh(u[i])
    elif act == SIGMOID:
        if rate and slope:
            for i in range(n):
                s = half * (one + fast_tanh(half * u[i]))
                r[i] = s
                d[i] = s * (one - s)
        elif slope:
            for i in range(n):
                s = half * (one + fast_tanh(half * u[i]))
                d[i] = s * (one - s)
        elif rate:
            for i in range(n):
                r[i] = half * (one + fast_tanh(half * u[i]))
    elif act == RELU:
        if rate:
            for i in range(n):
                v = u[i]
                r[i] = zero if v <= zero else v  # NaN passes, like np.maximum
        if slope:
            for i in range(n):
                d[i] = one if u[i] > zero else zero
    elif act == LEAKY_RELU:
        if rate:
            for i in range(n):
                v = u[i]
                r[i] = v if v > zero else leak_slope * v
        if slope:
            for i in range(n):
                d[i] = one if u[i] > zero else leak_slope
    elif act == LEAKY_RELU_INVERSE:
        inverse_slope = one / leak_slope
        if rate:
            for i in range(n):
                v = u[i]
                r[i] = v if v > zero else v / leak_slope
        if slope:
            for i in range(n):
                d[i] = one if u[i] > zero else inverse_slope


# -- one step on a range of rows ---------------------------------------------------------------------
# Every quantity of a step is row-local (row b of a drive reads row b of its signals, and row b
# of a product reads row b of its presynaptic signal), so a step can run on any range of rows;
# only the convergence test looks across rows. ``tb`` bundles the tables:
# (addrs, rows, cols, like, slots, pops, terms, fpar, consts).
@njit(**_KW)
def _products(tb, p, b0, b1):
    """Rows ``b0:b1`` of the matrix products ``s(pre) @ W^T`` of population ``p``'s dense terms (BLAS)."""
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    for j in range(pops[p, P_T0], pops[p, P_T1]):
        mode = terms[j, T_MODE]
        if mode == DIAG:
            continue
        pre = _view(addrs, rows, cols, terms[j, T_PRE], like)[b0:b1]
        out = _view(addrs, rows, cols, terms[j, T_TMP], like)[b0:b1]
        w = _view(addrs, rows, cols, terms[j, T_W], like)
        if mode == DENSE:
            np.dot(pre, w, out)
        else:
            np.dot(pre, w.T, out)


@njit(**_KW)
def _drive_row(tb, p, b, acc):
    """Row ``b`` of population ``p``'s drive: constant + Σ gain ⊙ term, summed in the reference order."""
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    n = acc.shape[0]
    first = True
    k = pops[p, P_CONST]
    if k >= 0:
        const = _view(addrs, rows, cols, k, like)
        crow = const[b if const.shape[0] > 1 else 0]
        for i in range(n):
            acc[i] = crow[i]
        first = False
    for j in range(pops[p, P_T0], pops[p, P_T1]):
        g = terms[j, T_GAIN]
        if terms[j, T_MODE] == DIAG:
            dvec = _view(addrs, rows, cols, terms[j, T_W], like)[0]
            srow = _view(addrs, rows, cols, terms[j, T_PRE], like)[b]
            if g < 0:
                if first:
                    for i in range(n):
                        acc[i] = srow[i] * dvec[i]
                else:
                    for i in range(n):
                        acc[i] = acc[i] + srow[i] * dvec[i]
            else:
                garr = _view(addrs, rows, cols, g, like)
                grow = garr[b if garr.shape[0] > 1 else 0]
                if first:
                    for i in range(n):
                        acc[i] = (srow[i] * dvec[i]) * grow[i]
                else:
                    for i in range(n):
                        acc[i] = acc[i] + (srow[i] * dvec[i]) * grow[i]
        else:
            trow = _view(addrs, rows, cols, terms[j, T_TMP], like)[b]
            if g < 0:
                if first:
                    for i in range(n):
                        acc[i] = trow[i]
                else:
                    for i in range(n):
                        acc[i] = acc[i] + trow[i]
            else:
                garr = _view(addrs, rows, cols, g, like)
                grow = garr[b if garr.shape[0] > 1 else 0]
                if first:
                    for i in range(n):
                        acc[i] = trow[i] * grow[i]
                else:
                    for i in range(n):
                        acc[i] = acc[i] + trow[i] * grow[i]
        first = False
    if first:  # no constant and no term: the drive is 0
        for i in range(n):
            acc[i] = 0.0


@njit(**_KW)
def _signals_of(tb, s, b):
    """Rate/slope of row ``b`` of slot ``s`` from its state."""
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    rate, slope = slots[s, S_RATE], slots[s, S_SLOPE]
    if rate or slope:
        u = _view(addrs, rows, cols, slots[s, S_U], like)[b]
        r = _view(addrs, rows, cols, slots[s, S_R] if rate else slots[s, S_U], like)[b]
        d = _view(addrs, rows, cols, slots[s, S_D] if slope else slots[s, S_U], like)[b]
        _signals_row(slots[s, S_ACT], u, r, d, rate, slope, c)


@njit(**_KW)
def _instantaneous_rows(tb, levels, b0, b1, static):
    """Rows ``b0:b1`` of the instantaneous populations, level by level (``static``: the constant ones only).

    Within a level no population reads another through a matrix product, so the products of a
    level come first and then each row of every population of the level, in dependency order.
    """
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    for lv in range(levels.shape[0]):
        p0, p1 = levels[lv, 0], levels[lv, 1]
        for p in range(p0, p1):
            if pops[p, P_STATIC] == static:
                _products(tb, p, b0, b1)
        for b in range(b0, b1):
            for p in range(p0, p1):
                if pops[p, P_STATIC] != static:
                    continue
                s = pops[p, P_SLOT]
                urow = _view(addrs, rows, cols, slots[s, S_U], like)[b]
                _drive_row(tb, p, b, urow)
                if not pops[p, P_LEAK_ONE]:
                    leak = fpar[p, F_LEAK]
                    for i in range(urow.shape[0]):
                        urow[i] = urow[i] / leak
                _signals_of(tb, s, b)


@njit(**_KW)
def _update_row(u, a, leak, tau, dt, c1, c2, leak_one, decay, integrator, m_res, m_scale):
    """Advance one row ``u`` by its drive ``a``; returns the running bit-maxima of |Δu| and |u_new|."""
    n = u.shape[0]
    if integrator == EULER:
        if leak_one:
            for i in range(n):
                old = u[i]
                new = old + dt * ((a[i] - old) / tau)
                m_res = max(m_res, _bits(abs(new - old)))
                m_scale = max(m_scale, _bits(abs(new)))
                u[i] = new
        else:
            for i in range(n):
                old = u[i]
                new = old + dt * ((a[i] - leak * old) / tau)
                m_res = max(m_res, _bits(abs(new - old)))
                m_scale = max(m_scale, _bits(abs(new)))
                u[i] = new
    elif decay:
        for i in range(n):
            old = u[i]
            new = c1 * old + c2 * (a[i] / tau)
            m_res = max(m_res, _bits(abs(new - old)))
            m_scale = max(m_scale, _bits(abs(new)))
            u[i] = new
    else:
        for i in range(n):
            old = u[i]
            new = old + dt * (a[i] / tau)
            m_res = max(m_res, _bits(abs(new - old)))
            m_scale = max(m_scale, _bits(abs(new)))
            u[i] = new
    return m_res, m_scale


@njit(**_KW)
def _integrated_rows(tb, n_inst, n_int, integrator, b0, b1, res, scale):
    """Drives and one integrator step of every integrated population on rows ``b0:b1``.

    Row ``b`` of every drive is computed before row ``b`` of any state moves (all drives of a
    step read the same state). ``res``/``scale`` (n_int,) receive max|Δu| and max|u_new| over
    the rows (NaN wins: the bit patterns of |x| order like the values, NaN above Inf).
    """
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    for j in range(n_int):
        _products(tb, n_inst + j, b0, b1)
    for j in range(n_int):
        res[j] = c[C_ZERO]
        scale[j] = c[C_ZERO]
    for b in range(b0, b1):
        for j in range(n_int):
            p = n_inst + j
            _drive_row(tb, p, b, _view(addrs, rows, cols, pops[p, P_ACC], like)[b])
        for j in range(n_int):
            p = n_inst + j
            s = pops[p, P_SLOT]
            m_res, m_scale = _update_row(
                _view(addrs, rows, cols, slots[s, S_U], like)[b], _view(addrs, rows, cols, pops[p, P_ACC], like)[b],
                fpar[p, F_LEAK], fpar[p, F_TAU], fpar[p, F_DT], fpar[p, F_C1], fpar[p, F_C2], pops[p, P_LEAK_ONE],
                pops[p, P_DECAY], integrator, _bits(res[j]), _bits(scale[j]))
            res[j] = _from_bits(m_res, c[C_ZERO])
            scale[j] = _from_bits(m_scale, c[C_ZERO])
            _signals_of(tb, s, b)


@njit(**_KW)
def _begin(tb, levels, n_inst, n_int, b0, b1):
    """Signals of the integrated populations and the constant instantaneous populations, rows ``b0:b1``."""
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    for b in range(b0, b1):
        for j in range(n_int):
            _signals_of(tb, pops[n_inst + j, P_SLOT], b)
    _instantaneous_rows(tb, levels, b0, b1, 1)


@njit(**_KW)
def _store_samples(tb, samples, index):
    """Copy the sampled populations' states into sample ``index`` of their buffers."""
    addrs, rows, cols, like, slots, pops, terms, fpar, c = tb
    for q in range(samples.shape[0]):
        u = _view(addrs, rows, cols, slots[samples[q, 0], S_U], like)
        buf = _view(addrs, rows, cols, samples[q, 1], like)
        bsz = u.shape[0]
        for b in range(bsz):
            buf[index * bsz + b, :] = u[b]


@njit(**_KW)
def _check(tb, levels, iopt, dopt, taus, samples, residuals, k, res, scale, state, bsz):
    """After step ``k``: log residuals, NaN/Inf test, samples, convergence window.

    ``state`` = [held, samples stored, failed population]; returns the status.
    """
    n_int, every, has_crit = iopt[O_N_INT], iopt[O_SAMPLE_EVERY], iopt[O_HAS_CRIT]
    dt, rtol, atol, bound = dopt[D_DT], dopt[D_RTOL], dopt[D_ATOL], dopt[D_BOUND]
    steps = k + 1
    ok = True
    for j in range(n_int):
        r = _residual(np.float64(res[j]), taus[j], dt)
        residuals[k, j] = r
        s = np.float64(scale[j])
        if _diverging(r, s, bound):
            state[2] = j
            return DIVERGED
        if has_crit and ok:
            ok = _within_tolerance(r, s, atol, rtol)
    if every > 0 and steps % every == 0:
        if iopt[O_SAMPLE_INST]:
            _instantaneous_rows(tb, levels, 0, bsz, 0)
        _store_samples(tb, samples, state[1])
        state[1] += 1
    if has_crit:
        state[0] = _advance_window(state[0], ok)
        if state[0] >= iopt[O_WINDOW]:
            return CONVERGED
    return RUNNING


@njit(**_KW)
def _finish(out, steps, status, state):
    """The kernel's result array (see :func:`relax_kernel`); a call that ran out of steps reports ``RUNNING``."""
    out[R_STEPS] = steps
    out[R_STATUS] = status
    out[R_FAILED] = state[2]
    out[R_SAMPLES] = state[1]
    out[R_HELD] = state[0]
    return out


# -- the phase -------------------------------------------------------------------------------------
@njit(**_KW)
def relax_kernel(addrs, rows, cols, like, slots, pops, terms, fpar, consts, levels, taus, iopt, dopt, samples,
                 residuals):
    """Run steps of one relaxation phase; see :mod:`neurosim.backends._numba_plan` for the tables.

    The call runs at most ``iopt[O_STEPS]`` steps from step ``iopt[O_FIRST]`` (the whole phase
    in one call, or one step per call when a per-step plasticity rule must observe every
    state), then recomputes the instantaneous populations at the final state.

    Returns
    -------
    out : int64 array (5,)
        Steps taken since the start of the phase, status (a :class:`~neurosim.stopping.PhaseStatus`
        code, or ``RUNNING`` when the call's steps ran out before the phase stopped),
        index of the integrated population that became NaN/Inf (-1 otherwise), samples stored
        since the start of the phase, consecutive steps the criterion has held.
    """
    tb = (addrs, rows, cols, like, slots, pops, terms, fpar, consts)
    n_inst, n_int, first = iopt[O_N_INST], iopt[O_N_INT], iopt[O_FIRST]
    bsz = iopt[O_BATCH]
    res = np.empty(max(n_int, 1), dtype=consts.dtype)
    scale = np.empty(max(n_int, 1), dtype=consts.dtype)
    state = np.array([iopt[O_HELD], iopt[O_SAMPLES0], -1], dtype=np.int64)
    out = np.zeros(5, dtype=np.int64)
    _begin(tb, levels, n_inst, n_int, 0, bsz)
    steps, status = first, RUNNING
    for k in range(first, first + iopt[O_STEPS]):
        _instantaneous_rows(tb, levels, 0, bsz, 0)
        _integrated_rows(tb, n_inst, n_int, iopt[O_INTEGRATOR], 0, bsz, res, scale)
        steps = k + 1
        status = _check(tb, levels, iopt, dopt, taus, samples, residuals, k, res, scale, state, bsz)
        if status != RUNNING:
            break
    if status != DIVERGED:
        _instantaneous_rows(tb, levels, 0, bsz, 0)
    return _finish(out, steps, status, state)


@njit(parallel=True, **_KW)
def relax_kernel_parallel(addrs, rows, cols, like, slots, pops, terms, fpar, consts, levels, taus, iopt, dopt,
                          samples, residuals):
    """:func:`relax_kernel` with every step split into ``iopt[O_CHUNKS]`` row blocks on numba's threads.

    Each block calls BLAS on its own rows (the caller makes BLAS single-threaded meanwhile);
    the residual maxima of the blocks are merged before the convergence test.
    """
    tb = (addrs, rows, cols, like, slots, pops, terms, fpar, consts)
    n_inst, n_int, first, chunks = iopt[O_N_INST], iopt[O_N_INT], iopt[O_FIRST], iopt[O_CHUNKS]
    bsz = iopt[O_BATCH]
    res_c = np.zeros((chunks, max(n_int, 1)), dtype=consts.dtype)
    scale_c = np.zeros((chunks, max(n_int, 1)), dtype=consts.dtype)
    res = np.empty(max(n_int, 1), dtype=consts.dtype)
    scale = np.empty(max(n_int, 1), dtype=consts.dtype)
    state = np.array([iopt[O_HELD], iopt[O_SAMPLES0], -1], dtype=np.int64)
    out = np.zeros(5, dtype=np.int64)
    for ch in prange(chunks):
        _begin(tb, levels, n_inst, n_int, ch * bsz // chunks, (ch + 1) * bsz // chunks)
    steps, status = first, RUNNING
    for k in range(first, first + iopt[O_STEPS]):
        for ch in prange(chunks):
            b0, b1 = ch * bsz // chunks, (ch + 1) * bsz // chunks
            _instantaneous_rows(tb, levels, b0, b1, 0)
            _integrated_rows(tb, n_inst, n_int, iopt[O_INTEGRATOR], b0, b1, res_c[ch], scale_c[ch])
        for j in range(n_int):
            m_res, m_scale = _bits(res_c[0, j]), _bits(scale_c[0, j])
            for ch in range(1, chunks):
                m_res = max(m_res, _bits(res_c[ch, j]))
                m_scale = max(m_scale, _bits(scale_c[ch, j]))
            res[j] = _from_bits(m_res, consts[C_ZERO])
            scale[j] = _from_bits(m_scale, consts[C_ZERO])
        steps = k + 1
        status = _check(tb, levels, iopt, dopt, taus, samples, residuals, k, res, scale, state, bsz)
        if status != RUNNING:
            break
    if status != DIVERGED:
        for ch in prange(chunks):
            _instantaneous_rows(tb, levels, ch * bsz // chunks, (ch + 1) * bsz // chunks, 0)
    return _finish(out, steps, status, state)


@njit(**_KW)
def is_diagonal(w):
    """True when every off-diagonal entry of the square matrix ``w`` is zero (early exit)."""
    n = w.shape[0]
    for i in range(n):
        row = w[i]
        for j in range(n):
            if row[j] != 0.0 and i != j:
                return False
    return True
