"""The cupy backend's CUDA kernels against their numpy twins, without a GPU.

Oracle: :class:`neurosim.backends._cupy_kernels.HostKernels` (the numpy twins, which the device
loop tests hold against the numpy reference backend). The CUDA source itself is

* compiled with NVRTC for several GPU architectures where CuPy's NVRTC binding loads (no device
  needed), and
* compiled with g++ against a harness that runs warps as 32 threads meeting at every shuffle, and
  executed on the CPU: same source, same launch logic (grid-stride loops, warp reductions,
  atomics on IEEE bit patterns), compared element by element with the twins.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neurosim.backends._cupy_kernels import (ACTIVATION_CODES, COMPILE_OPTIONS, CTL_CONVERGED, CTL_DIVERGED,
                                             CTL_FIELDS, CTL_MAX_STEPS, CTL_RUNNING, KERNEL_NAMES, MODE_COMMIT,
                                             MODE_EULER, MODE_EXP, MODE_EXP_NOLEAK, HostKernels, cuda_source)

_spec = importlib.util.spec_from_file_location("_ns_cuda_on_cpu", Path(__file__).with_name("_cuda_on_cpu.py"))
cuda_on_cpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cuda_on_cpu)

DTYPES = ("float64", "float32")
TOL = {"float64": 1e-14, "float32": 2e-6}  # libm vs numpy tanh differ in the last bits


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as err:  # no cupy, or no libnvrtc
        pytest.skip(f"CuPy's NVRTC binding is not usable here ({type(err).__name__}: {err})")
    return nvrtc


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_source_compiles_with_nvrtc_for_several_architectures(dtype):
    nvrtc = _nvrtc()
    for arch in ("75", "80", "90"):
        prog = nvrtc.createProgram(cuda_source(dtype), "neurosim.cu", [], [])
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture=compute_{arch}", *COMPILE_OPTIONS])
        except Exception:
            pytest.fail(f"NVRTC, compute_{arch}, {dtype}:\n{nvrtc.getProgramLog(prog)}")
        ptx = nvrtc.getPTX(prog)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        assert all(f".entry {name}" in ptx for name in KERNEL_NAMES)


@pytest.fixture(scope="module")
def libraries(pytestconfig, tmp_path_factory):
    if cuda_on_cpu.compiler() is None:
        pytest.skip("no g++ to build the CPU harness of the CUDA kernels")
    return cuda_on_cpu.build_libraries(DTYPES, cuda_on_cpu.library_dir(pytestconfig, tmp_path_factory))


def _arrays(rng, dtype, shape):
    return np.ascontiguousarray(rng.normal(size=shape).astype(dtype))


def _drive(rng, dtype, shape, present):
    """A drive tuple (c, acc, gain, gacc, s0, d0, s1, d1) with the parts in ``present``."""
    n = shape[1]
    full = {k: _arrays(rng, dtype, shape) for k in ("c", "acc", "gain", "gacc", "s0", "s1")}
    full["d0"], full["d1"] = _arrays(rng, dtype, (n,)), _arrays(rng, dtype, (n,))
    pick = {"c": ["c"], "acc": ["acc"], "gain": ["gain", "gacc"], "d0": ["s0", "d0"], "d1": ["s1", "d1"]}
    keep = {k for p in present for k in pick[p]}
    return tuple(full[k] if k in keep else None for k in ("c", "acc", "gain", "gacc", "s0", "d0", "s1", "d1"))


def _copy(drive):
    return tuple(None if a is None else a.copy() for a in drive)


CASES = [  # (mode, parts present, leak, tau)
    (MODE_EULER, ("c", "acc", "gain", "d0", "d1"), 1.0, 10.0),
    (MODE_EULER, ("acc", "d0"), 0.0, 3.0),
    (MODE_EULER, (), 0.7, 2.0),
    (MODE_EXP, ("c", "gain", "d1"), 0.5, 4.0),
    (MODE_EXP_NOLEAK, ("acc", "gain"), 0.0, 5.0),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_kernel_matches_its_twin(libraries, dtype):
    dev = cuda_on_cpu.CpuCudaKernels(libraries[dtype], dtype, grid=2, block=64)  # 128 threads < 7*33 elements
    host = HostKernels()
    rng = np.random.default_rng(0)
    shape = (7, 33)
    for act in ACTIVATION_CODES.values():
        for mode, present, leak, tau in CASES:
            u = _arrays(rng, dtype, shape) * 2
            drive = _drive(rng, dtype, shape, present)
            dt, decay, coef = 0.3, 0.9, 0.25
            outs = {}
            for label, k in (("dev", dev), ("host", host)):
                uu, r, df = u.copy(), np.empty(shape, dtype), np.empty(shape, dtype)
                ctl = np.zeros(CTL_FIELDS, np.int32)
                bits = np.zeros(2, np.uint64 if dtype == "float64" else np.uint32) if label == "dev" \
                    else np.zeros(2, dtype)
                k.update(uu, _copy(drive), mode, dt, tau, leak, leak == 1.0, decay, coef, act, r, df, ctl, bits)
                maxima = cuda_on_cpu.bits_to_values(bits, dtype) if label == "dev" else bits
                outs[label] = (uu, r, df, maxima)
            for a, b in zip(outs["dev"], outs["host"]):
                np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype],
                                           err_msg=f"act={act} mode={mode} parts={present}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_update_commits_given_state_and_stops_after_the_control_word_says_so(libraries, dtype):
    dev = cuda_on_cpu.CpuCudaKernels(libraries[dtype], dtype)
    rng = np.random.default_rng(1)
    u, new = _arrays(rng, dtype, (5, 40)), _arrays(rng, dtype, (5, 40))
    new[3, 7] = np.nan
    bits = np.zeros(2, np.uint64 if dtype == "float64" else np.uint32)
    ctl = np.zeros(CTL_FIELDS, np.int32)
    before = u.copy()
    dev.update(u, (None, new) + (None,) * 6, MODE_COMMIT, 1.0, 1.0, 1.0, True, 0.0, 0.0, 0, None, None, ctl, bits)
    np.testing.assert_array_equal(u, new)
    assert np.isnan(cuda_on_cpu.bits_to_values(bits, dtype)[0])  # NaN wins the bit-pattern maximum
    ctl[0] = CTL_CONVERGED
    bits[:] = 0
    dev.update(u, (None, before) + (None,) * 6, MODE_COMMIT, 1.0, 1.0, 1.0, True, 0.0, 0.0, 0, None, None, ctl, bits)
    np.testing.assert_array_equal(u, new)  # predicated: nothing written once stopped
    assert not bits.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_instant_signals_and_fold_kernels_match_their_twins(libraries, dtype):
    dev = cuda_on_cpu.CpuCudaKernels(libraries[dtype], dtype, grid=1, block=32)
    host = HostKernels()
    rng = np.random.default_rng(2)
    shape = (4, 21)
    for act in ACTIVATION_CODES.values():
        drive = _drive(rng, dtype, shape, ("c", "acc", "gain", "d0"))
        res = []
        for k in (dev, host):
            out, r, df = np.empty(shape, dtype), np.empty(shape, dtype), np.empty(shape, dtype)
            k.instant(out, _copy(drive), 0.5, False, act, r, df)
            r2, df2 = np.empty(shape, dtype), np.empty(shape, dtype)
            k.signals(out, act, r2, df2)
            acc = drive[1].copy()
            k.fold(acc, False, drive[2], drive[5], True)
            acc0 = np.empty(shape, dtype)
            k.fold(acc0, True, drive[2], drive[3], False)
            res.append((out, r, df, r2, df2, acc, acc0))
        for a, b in zip(*res):
            np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], err_msg=f"act={act}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_converge_kernel_matches_its_twin_step_by_step(libraries, dtype):
    """Residual history, convergence window, NaN detection and the step limit, on a drawn residual sequence."""
    dev = cuda_on_cpu.CpuCudaKernels(libraries[dtype], dtype)
    host = HostKernels()
    rng = np.random.default_rng(3)
    bits_type = np.uint64 if dtype == "float64" else np.uint32
    for trial in range(40):
        n_pops, max_steps = int(rng.integers(1, 4)), int(rng.integers(3, 12))
        window, has_crit = int(rng.integers(1, 4)), bool(rng.integers(0, 4))
        tau = rng.uniform(1, 10, size=n_pops)
        dt = float(rng.uniform(0.1, 2))
        state = {}
        for label in ("dev", "host"):
            state[label] = (np.zeros(CTL_FIELDS, np.int32), np.zeros((max_steps, n_pops)))
        scale = 10.0 ** rng.integers(-8, 0, size=(max_steps, 1, 1))
        seq = (np.abs(rng.normal(size=(max_steps, n_pops, 2))) * scale).astype(dtype)
        if trial % 5 == 0:
            seq[int(rng.integers(0, max_steps)), int(rng.integers(0, n_pops)), 0] = np.nan if trial % 10 else np.inf
        for k in range(max_steps):
            for label, kernels in (("dev", dev), ("host", host)):
                ctl, res = state[label]
                values = seq[k].copy()
                bits = values.view(bits_type).copy() if label == "dev" else values
                running = ctl[0] == CTL_RUNNING
                kernels.converge(ctl, bits, res, tau, dt, has_crit, 1e-6, 1e-3, window, max_steps)
                if running:
                    assert not np.any(bits), "the scratch is cleared for the next step"
        np.testing.assert_array_equal(state["dev"][0], state["host"][0])
        np.testing.assert_array_equal(state["dev"][1], state["host"][1])
        assert state["host"][0][0] in (CTL_CONVERGED, CTL_DIVERGED, CTL_MAX_STEPS)
