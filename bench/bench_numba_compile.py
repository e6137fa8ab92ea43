"""Cold and cached compile time of neurosim's numba relaxation kernels, per dtype and kernel.

Each measurement runs in a fresh process whose ``NUMBA_CACHE_DIR`` points at a new empty
directory (cold: nothing cached), then a second fresh process on the same directory (cached:
the machine code is loaded from disk). The workload is the canonical relaxation
(``bench_relaxation.py``: IL 784-512-512-10 tanh, 100 steps); the serial kernel is timed at
batch 1 with ``threads=1``, the parallel kernel (``relax_kernel_parallel``, batch split in row
blocks) at batch 256 with ``threads=2``. Reported: the first ``relax`` call minus a second
(warm) call, i.e. the compile (or cache load) alone, plus the import time of the backend.

Run: ``.venv/bin/python bench/bench_numba_compile.py [--dtypes float32,float64] [--json FILE]``
(pinned as the caller pins it, e.g. ``taskset -c 0``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from neurosim import circuits
from neurosim.backends.numba_backend import NumbaBackend
from neurosim.dynamics import PhaseField
from neurosim.schedule import Phase
dtype, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
backend = NumbaBackend(dtype, threads=threads)
t_import = time.perf_counter() - t0
il = circuits.get("il")
c = il.build([784, 512, 512, 10], "tanh", "mse", seed=0)
r = il.schedule(c, gamma=0.1, max_steps=100).phase("relax")
ph = Phase("relax", evolve=r.evolve, clamp=r.clamp, dt_ms=r.dt_ms, max_ms=r.max_ms)
dt = np.dtype(dtype)
w = {p.name: p.weights.astype(dt) for p in c.projections if not p.tied}
b = {k: v.astype(dt) for k, v in c.initial_biases().items()}
rng = np.random.default_rng(0)
state = {q.name: np.zeros((batch, q.size), dt) for q in c.populations}
state.update(x0=np.tanh(rng.normal(size=(batch, 784))).astype(dt), x3=rng.normal(size=(batch, 10)).astype(dt))
field = PhaseField(c, ph, w, b, state, {}, np)
y0 = {n: state[n] for n in field.integrated}
t1 = time.perf_counter(); backend.relax(field, ph, y0, 0.0); first = time.perf_counter() - t1
t1 = time.perf_counter(); backend.relax(field, ph, y0, 0.0); warm = time.perf_counter() - t1
print(json.dumps(dict(import_s=t_import, first_s=first, warm_s=warm, compile_s=first - warm,
                      path=backend.paths.get("relax", ""))))
"""


def measure(dtype: str, batch: int, threads: int, cache_dir: str) -> dict:
    """One fresh process on ``cache_dir``; returns its timings (seconds).

    Parameters
    ----------
    dtype : str
        ``float32`` or ``float64``.
    batch, threads : int
        Batch size and ``NumbaBackend(threads=...)``: batch 256 with 2 threads takes the parallel kernel.
    cache_dir : str
        ``NUMBA_CACHE_DIR`` for the process.

    Returns
    -------
    dict
        ``import_s``, ``first_s``, ``warm_s``, ``compile_s`` (= first - warm) and the kernel ``path``.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, NUMBA_NUM_THREADS=str(max(threads, 1)),
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", _CHILD, dtype, str(batch), str(threads)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"compile probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure cold and cached compile times; print a markdown table (and write JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"load {os.getloadavg()[0]:.1f}")
    print("| dtype | kernel | cold compile | cached load | import | path |\n|---|---|---|---|---|---|")
    for dtype in args.dtypes.split(","):
        for kernel, batch, threads in (("serial", 1, 1), ("parallel", 256, 2)):
            with tempfile.TemporaryDirectory() as cache:
                cold = measure(dtype, batch, threads, cache)
                cached = measure(dtype, batch, threads, cache)
            rows.append(dict(dtype=dtype, kernel=kernel, cold=cold, cached=cached))
            print(f"| {dtype} | {kernel} | {cold['compile_s']:.1f} s | {cached['compile_s']:.2f} s | "
                  f"{cold['import_s']:.1f} s | {cold['path']} |", flush=True)
    print(f"load {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
