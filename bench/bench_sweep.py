"""Benchmark: a sweep of 8 quickstart runs on a 2-worker Dask local cluster vs one after another.

The 8 runs are the quickstart scenario (64-48-10 backprop as dynamics on scikit-learn digits,
numpy backend) at 2 learning rates x 4 seeds. Sequential: ``neurosim sweep --scheduler
synchronous`` (no Dask; each run in this process, one BLAS thread, one after the other).
Parallel: ``neurosim sweep --workers 2`` (a ``distributed.LocalCluster`` of 2 single-threaded
worker processes; includes starting and stopping the cluster and importing neurosim in each
worker). Each mode writes into a fresh folder, so nothing is skipped. The two modes alternate
``--repeats`` times so that load from other processes hits both; prints the wall times, the
ratio sequential / parallel of the medians (ideal: the number of workers), the mean wall time
of one run in each mode (it grows in parallel when other processes hold the cores), the load
average, the machine's parallel capacity measured before and after (:func:`machine_capacity`: the
ceiling for the speed-up on a shared machine), and checks that both modes produced the same test
accuracies.

Run: ``python bench/bench_sweep.py [--epochs 3] [--repeats 1] [--workers 2]``
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from neurosim.sweep import run_sweep

QUICKSTART = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.py"


def _spin(n: int) -> int:
    x = 0
    for i in range(n):
        x = (x + i * i) % 1000003
    return x


def machine_capacity(workers: int, n: int = 3_000_000) -> float:
    """How many times more pure-Python work ``workers`` processes get done than one, right now.

    The same CPU-bound loop runs ``workers`` times one after the other, then in ``workers``
    processes at once; the ratio of the two wall times is the parallel capacity the machine
    offers at this moment (``workers`` on an idle machine with that many cores, less when other
    processes hold them): the ceiling for the sweep's speed-up.
    """
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_spin, [1000] * workers))  # start the processes first
        t0 = time.perf_counter()
        for _ in range(workers):
            _spin(n)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(_spin, [n] * workers))
        parallel = time.perf_counter() - t0
    return serial / parallel


def one(mode: str, root: Path, epochs: int, workers: int) -> tuple[float, list[float], float]:
    out = root / f"{mode}-{time.time_ns()}"
    t0 = time.perf_counter()
    result = run_sweep(QUICKSTART, {"lr": ["0.3", "0.5"]}, [0, 1, 2, 3], out, overrides={"epochs": str(epochs)},
                       scheduler="synchronous" if mode == "sequential" else None, workers=workers,
                       log=lambda line: None)
    wall = time.perf_counter() - t0
    assert not result.failed, result.failed
    acc = [s["metrics"]["test_accuracy"] for s in result.states]
    per_run = statistics.mean(s["task_wall_s"] for s in result.states)
    shutil.rmtree(out)
    return wall, acc, per_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per quickstart run (default 3)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    times: dict[str, list[float]] = {"sequential": [], "parallel": []}
    accs: dict[str, list[float]] = {}
    load = []
    capacity = [machine_capacity(args.workers)]
    print(f"machine capacity now: {args.workers} processes do {capacity[-1]:.2f}x the work of one", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for _ in range(args.repeats):
            for mode in ("sequential", "parallel"):
                load.append(os.getloadavg()[0])
                wall, acc, per_run = one(mode, Path(tmp), args.epochs, args.workers)
                times[mode].append(wall)
                accs[mode] = acc
                print(f"{mode:<10} 8 quickstart runs ({args.epochs} epochs each): {wall:7.1f} s "
                      f"(mean {per_run:.1f} s per run; 1-min load average before: {load[-1]:.1f})", flush=True)
    capacity.append(machine_capacity(args.workers))
    seq, par = statistics.median(times["sequential"]), statistics.median(times["parallel"])
    same = accs["sequential"] == accs["parallel"]
    print(f"\nsequential {seq:.1f} s, {args.workers} workers {par:.1f} s: speed-up {seq / par:.2f}x "
          f"(ideal {args.workers}x); cores {os.cpu_count()}, 1-min load average during the runs "
          f"{min(load):.1f}-{max(load):.1f}; machine capacity for {args.workers} processes before/after: "
          f"{capacity[0]:.2f}x/{capacity[1]:.2f}x; test accuracies identical in both modes: {same}")


if __name__ == "__main__":
    main()
