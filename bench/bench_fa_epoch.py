"""Benchmark: one MNIST epoch of the feedback-alignment circuit vs plain algebraic backprop.

784-500-10 tanh, softmax cross-entropy, batch 128, numpy backend, float64. The baseline is
backprop written directly in numpy (one forward pass, one backward pass, in-place SGD) on the
same batches in the same process; the circuit runs its three phases (forward relaxation,
error relaxation, learning) through :class:`neurosim.Simulator`. Runs alternate
(baseline, circuit, baseline, circuit ...) so that load from other processes hits both; the
ratio of the medians is printed, then a profile of one circuit epoch grouped by function.
BLAS runs on ``--threads`` threads (default 1: on a shared 2-core machine multi-threaded BLAS
under contention is several times slower and far noisier).

Run: ``python bench/bench_fa_epoch.py [--batches N] [--repeats R] [--circuit NAME] [--threads T]``
(target: ratio <= 3).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
from threadpoolctl import threadpool_limits

import neurosim as ns
from neurosim import circuits


def plain_backprop_epoch(weights: dict, batches: list, lr: float) -> None:
    """One epoch of algebraic backprop (tanh hidden layer, softmax output), in place."""
    w1, b1, w2, b2 = weights["W1"], weights["b1"], weights["W2"], weights["b2"]
    for x, y in batches:
        h = np.tanh(x @ w1.T + b1)
        a2 = h @ w2.T + b2
        p = np.exp(a2 - a2.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        e2 = y - p
        e1 = (1.0 - h * h) * (e2 @ w2)
        step = lr / x.shape[0]
        w2 += step * (e2.T @ h)
        b2 += step * e2.sum(axis=0)
        w1 += step * (e1.T @ x)
        b1 += step * e1.sum(axis=0)


def circuit_epoch(sim: ns.Simulator, batches: list) -> None:
    for i, (x, y) in enumerate(batches):
        sim.run_trial({"x": x, "y": y}, batch_index=i)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=0, help="batches per epoch (0: the full epoch, 469)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs of each kind")
    p.add_argument("--circuit", default="feedback_alignment", help="circuit to time (default feedback_alignment)")
    p.add_argument("--profile-top", type=int, default=15, help="functions shown in the profile")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for both runs (default 1)")
    args = p.parse_args()
    with threadpool_limits(limits=args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:

    data = ns.data.mnist()
    rng = np.random.default_rng(0)
    batches = [(np.ascontiguousarray(x), np.ascontiguousarray(y)) for x, y in data.train.batches(128, rng=rng)]
    if args.batches:
        batches = batches[: args.batches]
    mod = circuits.get(args.circuit)
    circuit = mod.build([784, 500, 10], "tanh", "ce", seed=0)
    sim = ns.Simulator(circuit, mod.schedule(circuit, lr=0.2), backend="numpy", dtype="float64", seed=0)
    weights = {"W1": circuit.projection("W1").weights.copy(), "W2": circuit.projection("W2").weights.copy(),
               "b1": np.zeros(500), "b2": np.zeros(10)}
    circuit_epoch(sim, batches[:3])  # warm-up
    plain_backprop_epoch(weights, batches[:3], 0.2)

    t_plain, t_circ = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plain_backprop_epoch(weights, batches, 0.2)
        t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        circuit_epoch(sim, batches)
        t_circ.append(time.perf_counter() - t0)
    med_p, med_c = float(np.median(t_plain)), float(np.median(t_circ))
    print(f"{len(batches)} batches of 128, 784-500-10 tanh/softmax, numpy float64, {args.threads} BLAS thread(s)")
    print(f"plain numpy backprop epoch : median {med_p:7.3f} s  (runs {', '.join(f'{t:.3f}' for t in t_plain)})")
    print(f"{args.circuit} epoch : median {med_c:7.3f} s  (runs {', '.join(f'{t:.3f}' for t in t_circ)})")
    print(f"ratio circuit / plain      : {med_c / med_p:.2f}x   (target <= 3x)")
    steps = {}
    for rec in sim.log.rows[-3 * len(batches):]:
        steps.setdefault(rec.phase, []).append(rec.steps)
    print("integration steps per phase: " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in steps.items()))

    prof = cProfile.Profile()
    prof.enable()
    circuit_epoch(sim, batches)
    prof.disable()
    print(f"\nprofile of one circuit epoch (top {args.profile_top} by own time):")
    pstats.Stats(prof).strip_dirs().sort_stats("tottime").print_stats(args.profile_top)


if __name__ == "__main__":
    main()
