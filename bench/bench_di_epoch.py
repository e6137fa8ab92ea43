"""Benchmark: simulated dynamic inversion on MNIST 784-1000-10 against its closed form (NDI).

Both circuits run through :class:`neurosim.Simulator` on the same batches in the same process,
from the same initial weights, alternating (NDI, DI numpy, DI numba, NDI, ...) so that load from
other processes hits all of them; medians are compared. DI relaxes its loop (controller ``c2``,
10 units; relay ``r2``, 1000 units) from zero at every trial until ``max |τ du/dt|`` falls below
``--rtol`` of the state; NDI computes the same fixed point in closed form. An epoch (60000
samples) is extrapolated from ``--samples`` samples per batch size, and said so. Also printed:
relaxation steps per trial, the share of DI's wall time spent in the loop, and the largest
difference between DI's and NDI's updates on the first batch.

Run: ``python bench/bench_di_epoch.py [--batch-sizes 1,100] [--samples 2000] [--repeats 3]
[--threads 1] [--rtol 1e-6]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import neurosim as ns
from neurosim.circuits import dynamic_inversion as di, ndi

EPOCH = 60000


def make_sim(kind: str, backend: str, lr: float, rtol: float) -> ns.Simulator:
    """A fresh simulator of ``ndi`` or ``di`` (same seed: same W and B = -W^T)."""
    if kind == "ndi":
        circuit = ndi.build([784, 1000, 10], "tanh", "ce", seed=0)
        sched = ndi.schedule(circuit, lr=lr)
    else:
        circuit = di.build([784, 1000, 10], "tanh", "ce", seed=0)
        sched = di.schedule(circuit, lr=lr, loop_settle=ns.Converged(rtol=rtol, atol=1e-12, window=2))
    return ns.Simulator(circuit, sched, backend=backend, seed=0, progress=False)


def run_epoch(sim: ns.Simulator, batches: list) -> float:
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        sim.run_trial({"x": x, "y": y}, batch_index=i)
    return time.perf_counter() - t0


def loop_stats(sim: ns.Simulator) -> tuple[float, float, float]:
    """(mean steps, mean simulated ms, wall share) of the ``invert2`` phase in the simulator's log."""
    tab = sim.log.table()
    inv = tab["phase"] == "invert2"
    if not inv.any():
        return 0.0, 0.0, 0.0
    dur = tab["end_ms"][inv] - tab["start_ms"][inv]
    return float(tab["steps"][inv].mean()), float(dur.mean()), float(tab["wall_s"][inv].sum() / tab["wall_s"].sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="1,100", help="comma-separated batch sizes (default 1,100)")
    p.add_argument("--samples", type=int, default=2000, help="samples timed per batch size (default 2000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind (default 3)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--rtol", type=float, default=1e-6, help="loop convergence tolerance (default 1e-6)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    args = p.parse_args()
    with threadpool_limits(limits=args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:
    data = ns.data.mnist(limit_train=max(args.samples, 1000))
    kinds = [("ndi", "numpy"), ("di", "numpy")]
    if "numba" in ns.available_backends():
        kinds.append(("di", "numba"))
    print(f"MNIST 784-1000-10 tanh/softmax, lr {args.lr}, loop rtol {args.rtol}, {args.threads} BLAS thread(s); "
          f"epoch = {EPOCH} samples, extrapolated from {args.samples} per batch size")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        rng = np.random.default_rng(0)
        batches = [(np.ascontiguousarray(x), np.ascontiguousarray(y))
                   for x, y in data.train.batches(bs, rng=rng)][: max(1, args.samples // bs)]
        n = sum(x.shape[0] for x, _ in batches)
        times = {k: [] for k in kinds}
        stats = {}
        for k in kinds:  # warm-up (numba compiles here) and the DI-vs-NDI agreement on one batch
            run_epoch(make_sim(*k, args.lr, args.rtol), batches[:2])
        x0, y0 = batches[0]
        upd = {k: make_sim(*k, args.lr, args.rtol).run_trial({"x": x0, "y": y0}, apply_updates=False).updates
               for k in kinds}
        diff = max(np.abs(upd[k]["W1"] - upd[kinds[0]]["W1"]).max() / np.abs(upd[kinds[0]]["W1"]).max()
                   for k in kinds[1:])
        for _ in range(args.repeats):
            for k in kinds:
                sim = make_sim(*k, args.lr, args.rtol)
                times[k].append(run_epoch(sim, batches))
                stats[k] = loop_stats(sim)
        med = {k: float(np.median(v)) for k, v in times.items()}
        base = med[kinds[0]]
        print(f"\nbatch size {bs}: {len(batches)} batches, {n} samples; max rel. difference of ΔW1 from NDI "
              f"on one batch {diff:.1e}")
        print(f"{'circuit':<12}{'wall s':>9}{'ms/sample':>11}{'epoch s (extrap.)':>19}{'ratio to NDI':>14}"
              f"{'loop steps':>12}{'loop ms sim':>13}{'loop share':>12}")
        for k in kinds:
            steps, sim_ms, share = stats[k]
            print(f"{k[0] + '/' + k[1]:<12}{med[k]:>9.2f}{1e3 * med[k] / n:>11.3f}{med[k] / n * EPOCH:>19.0f}"
                  f"{med[k] / base:>14.2f}{steps:>12.1f}{sim_ms:>13.1f}{100 * share:>11.0f}%")


if __name__ == "__main__":
    main()
