"""The CUDA kernels of the cupy backend, compiled with g++ and run on the CPU (tests only).

:func:`build_libraries` compiles :func:`neurosim.backends._cupy_kernels.cuda_source` together
with ``_cuda_on_cpu.cpp`` (which emulates warps, shuffles and atomics with threads) into shared
libraries, cached by content hash; :class:`CpuCudaKernels` has the interface of
:class:`~neurosim.backends._cupy_kernels.DeviceKernels` and works on numpy arrays.
:class:`CpuCudaRuntime` runs the device loop with these kernels.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from neurosim.backends._cupy_kernels import cuda_source
from neurosim.backends._device_loop import HostRuntime

HARNESS = Path(__file__).with_name("_cuda_on_cpu.cpp")


def compiler() -> str | None:
    """The C++ compiler used to build the harness (None when there is none)."""
    return shutil.which("g++")


def library_dir(pytestconfig, tmp_path_factory) -> Path:
    """pytest's cache directory for the compiled libraries (a temporary one when the cache is off)."""
    cache = getattr(pytestconfig, "cache", None)
    return Path(cache.mkdir("neurosim_cuda_on_cpu")) if cache is not None else tmp_path_factory.mktemp("cuda_on_cpu")


def _key(dtype: str) -> str:
    return hashlib.sha256((cuda_source(dtype) + HARNESS.read_text()).encode()).hexdigest()[:16]


def build_libraries(dtypes, cache_dir: Path) -> dict[str, Path]:
    """Compile the kernels of each dtype with the harness into ``cache_dir``, in parallel; reused when unchanged."""
    libs, jobs = {}, []
    for dtype in dtypes:
        key = _key(dtype)
        libs[dtype] = lib = cache_dir / f"ns_kernels_{dtype}_{key}.so"
        if lib.exists():
            continue
        work = cache_dir / f"build_{dtype}_{key}_{os.getpid()}"  # per process: pytest-xdist workers build side by side
        work.mkdir(parents=True, exist_ok=True)
        (work / "kernels.cu").write_text(cuda_source(dtype))
        (work / "harness.cpp").write_text(HARNESS.read_text())
        cmd = [compiler(), "-std=c++20", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-pthread", f"-I{work}",
               str(work / "harness.cpp"), "-o", str(work / "lib.so")]
        jobs.append((subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), work / "lib.so", lib))
    for proc, tmp, lib in jobs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"compiling the CUDA kernels for the CPU failed:\n{err}")
        tmp.replace(lib)  # atomic: a concurrent build of the same source wins or loses whole
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return libs


def _ptr(a):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


class CpuCudaKernels:
    """The CUDA kernels on numpy arrays (interface of ``DeviceKernels``).

    Parameters
    ----------
    library : Path
    dtype : numpy dtype
    grid, block : int
        Launch shape of the element-wise kernels (block a multiple of 32).
    """

    def __init__(self, library: Path, dtype, grid: int = 2, block: int = 64):
        self.lib = ctypes.CDLL(str(library))
        self.real = ctypes.c_double if np.dtype(dtype) == np.float64 else ctypes.c_float
        self.grid, self.block = grid, block

    def _launch(self, name: str, *args) -> None:
        getattr(self.lib, name)(ctypes.c_int(self.grid), ctypes.c_int(self.block), *args)

    def update(self, u, drive, mode, dt, tau, leak, leak_is_one, decay, coef, act, r_out, df_out, ctl, res_bits):
        r = self.real
        self._launch("run_ns_update", ctypes.c_longlong(u.size), ctypes.c_longlong(u.shape[-1]), _ptr(u),
                     *[_ptr(a) for a in drive], ctypes.c_int(mode), r(dt), r(tau), r(leak), ctypes.c_int(leak_is_one),
                     r(decay), r(coef), ctypes.c_int(act), _ptr(r_out), _ptr(df_out), _ptr(ctl), _ptr(res_bits))

    def instant(self, out, drive, leak, leak_is_one, act, r_out, df_out):
        self._launch("run_ns_instant", ctypes.c_longlong(out.size), ctypes.c_longlong(out.shape[-1]), _ptr(out),
                     *[_ptr(a) for a in drive], self.real(leak), ctypes.c_int(leak_is_one), ctypes.c_int(act),
                     _ptr(r_out), _ptr(df_out))

    def signals(self, u, act, r_out, df_out):
        self._launch("run_ns_signals", ctypes.c_longlong(u.size), _ptr(u), ctypes.c_int(act), _ptr(r_out), _ptr(df_out))

    def fold(self, acc, init, a, b, b_is_row):
        self._launch("run_ns_fold", ctypes.c_longlong(acc.size), ctypes.c_longlong(acc.shape[-1]), _ptr(acc),
                     ctypes.c_int(init), _ptr(a), _ptr(b), ctypes.c_int(b_is_row))

    def converge(self, ctl, bits, res, tau_ms, dt, has_crit, atol, rtol, window, max_steps):
        self.lib.run_ns_converge(_ptr(ctl), _ptr(bits), _ptr(res), ctypes.c_int(bits.shape[0]), _ptr(tau_ms),
                                 ctypes.c_double(dt), ctypes.c_int(has_crit), ctypes.c_double(atol),
                                 ctypes.c_double(rtol), ctypes.c_int(window), ctypes.c_int(max_steps))


def bits_to_values(bits: np.ndarray, dtype) -> np.ndarray:
    """The floats whose IEEE bit patterns ``bits`` holds."""
    return bits.view(np.float64 if np.dtype(dtype) == np.float64 else np.float32)


class CpuCudaRuntime(HostRuntime):
    """:class:`HostRuntime` whose kernels are the CUDA kernels compiled for the CPU."""

    name = "CUDA kernels on the CPU"

    def __init__(self, dtype: str, library: Path, lag: int = 0):
        super().__init__(dtype, lag)
        self.kernels = CpuCudaKernels(library, dtype, grid=1, block=32)

    def residual_scratch(self, n_pops: int) -> np.ndarray:
        return np.zeros((n_pops, 2), dtype=np.uint64 if self.dtype == np.float64 else np.uint32)
