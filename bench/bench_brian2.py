"""Benchmark: the same relaxation in Brian2 (cython target) and in neurosim's fastest CPU backend.

Workload: the IL circuit's ``relax`` phase (predictive-coding inference, ``shared/PERFORMANCE.md``
with a linear input, as the IL circuit has it), layers ``--sizes`` (784-512-512-10), tanh,
input and output clamped, ``--steps`` (100) forward-Euler steps at ``dt/tau = 0.1`` from the
feedforward state, batch ``--batch`` (1), float64, no stopping rule.

* Brian2: :func:`neurosim.brian.to_brian2` in the ``synapses`` layout (a ``NeuronGroup`` per
  population, dense ``Synapses`` with summed variables per projection), cython target, no
  monitors. The first ``run()`` compiles every code object into a fresh cache directory: the
  compile time (cold first run minus a warm run of the same length) is shown apart. Warm
  networks then reuse the compiled modules; their time per step is the time of Brian2's
  simulation loop divided by the steps, and the rest of each ``run()`` call (Brian2 sets up
  its code objects at every call) is shown apart.
* neurosim: ``Backend.relax`` of the same phase (``--backend``, default numba where present),
  no samples, residuals and convergence bookkeeping included, as the simulator runs it, after
  one untimed warm-up run (JIT compilation).

Both run from the same start state, interleaved for ``--rounds`` rounds; medians are reported,
with the ratio Brian2 / neurosim (> 1: neurosim faster) per step and per complete phase, and
the largest relative difference of the final states (they must agree to round-off).

Brian2's runtime is single-threaded; neurosim's BLAS runs on ``--threads`` (1) threads (more
threads than free cores make the matrix products spin instead of compute on a shared machine).

Run: ``python bench/bench_brian2.py [--sizes 784,512,512,10] [--batch 1] [--steps 100]
[--rounds 3] [--backend numba] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import neurosim as ns
from neurosim import circuits
from neurosim.backends import get_backend
from neurosim.brian import ZERO_SCALE, phase_start, run_neurosim, to_brian2
from neurosim.brian.plan import fixed_steps
from neurosim.dynamics import PhaseField


def fastest_cpu_backend() -> str:
    return "numba" if "numba" in ns.available_backends() else "numpy"


def make_problem(sizes: list[int], batch: int, steps: int):
    """The IL circuit, its relax phase for ``steps`` steps, the batch and the feedforward start."""
    il = circuits.get("il")
    circuit = il.build(sizes, "tanh", "mse", seed=0)
    schedule = il.schedule(circuit, gamma=0.1, max_steps=steps)
    relax = fixed_steps(schedule.phase("relax"), steps)
    rng = np.random.default_rng(0)
    data = {"x": rng.uniform(0, 1, (batch, sizes[0])), "y": np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]}
    _, start = run_neurosim(circuit, schedule.phase("forward"), data)
    return circuit, relax, data, start


def time_neurosim(circuit, phase, data, start, backend: str) -> tuple[float, dict]:
    """Wall time of ``backend.relax`` for the whole phase and the final states."""
    be = get_backend(backend, "float64")
    begin = phase_start(circuit, phase, data, start)
    field = PhaseField(circuit, phase, {k: be.asarray(v) for k, v in circuit.initial_weights().items()},
                       {k: be.asarray(v) for k, v in circuit.initial_biases().items()},
                       {k: be.asarray(v) for k, v in begin.state.items()},
                       {k: be.asarray(v) for k, v in begin.inputs.items()}, be.xp)
    y0 = {n: be.asarray(begin.state[n]) for n in field.integrated}
    t0 = time.perf_counter()
    res = be.relax(field, phase, y0, 0.0)
    wall = time.perf_counter() - t0
    return wall, {k: be.to_host(v) for k, v in res.state.items()}


def _relative(theirs: np.ndarray, ours: np.ndarray) -> float:
    """``max |Δ| / max |ours|`` (absolute where ours is zero up to round-off, as in neurosim.brian.compare)."""
    diff, scale = float(np.max(np.abs(theirs - ours))), float(np.max(np.abs(ours)))
    return diff / scale if scale > ZERO_SCALE else diff


def time_brian2(circuit, phase, data, start, steps: int) -> tuple[float, float, float]:
    """A warm network: (seconds per step in Brian2's loop, seconds of set-up per run(), whole run() call)."""
    net = to_brian2(circuit, phase, data, state=start, target="cython", record=False)
    net.run(1)  # the network's first run() generates and loads its code objects
    net.load(data, start)
    wall = net.run(steps).wall_s
    return net.last_loop_s / steps, wall - net.last_loop_s, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="784,512,512,10", help="layer widths (default 784,512,512,10)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--steps", type=int, default=100, help="Euler steps of the phase (default 100)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    p.add_argument("--backend", default=fastest_cpu_backend(), help="neurosim backend (default: numba if present)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads of neurosim (default 1, like Brian2's single-threaded runtime)")
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be at least 2")
    with threadpool_limits(limits=args.threads):
        run(args)


def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    circuit, phase, data, start = make_problem(sizes, args.batch, args.steps)
    print(f"IL relax phase {'-'.join(map(str, sizes))} tanh, batch {args.batch}, {args.steps} Euler steps "
          f"dt/tau=0.1, float64; Brian2 cython target; neurosim with {args.threads} BLAS thread(s)")

    from brian2 import prefs

    cache = prefs.codegen.runtime.cython.cache_dir
    with tempfile.TemporaryDirectory() as fresh:
        prefs.codegen.runtime.cython.cache_dir = fresh
        try:
            t0 = time.perf_counter()
            cold_net = to_brian2(circuit, phase, data, state=start, target="cython", record=False)
            build_s = time.perf_counter() - t0
            cold = cold_net.run(args.steps)
            warm_full = to_brian2(circuit, phase, data, state=start, target="cython", record=False).run(args.steps)
        finally:
            prefs.codegen.runtime.cython.cache_dir = cache
    compile_s = cold.wall_s - warm_full.wall_s
    n_syn = args.batch * sum(np.count_nonzero(d.weights) for ds in cold_net.plan.drives.values() for d in ds)
    print(f"Brian2 network: {len(cold_net.equations)} groups and synapse sets, {n_syn:,} synapses; built in "
          f"{build_s:.2f} s; first run() {cold.wall_s:.2f} s of which compilation ≈ {compile_s:.2f} s "
          f"(cold cache; cached on disk afterwards)")

    time_neurosim(circuit, phase, data, start, args.backend)  # warm-up (JIT compilation)
    ours, theirs = [], []
    final_ns = None
    for _ in range(args.rounds):
        wall, final_ns = time_neurosim(circuit, phase, data, start, args.backend)
        ours.append(wall)
        theirs.append(time_brian2(circuit, phase, data, start, args.steps))
    ns_phase = statistics.median(ours)
    b2_step = statistics.median(t[0] for t in theirs)
    b2_fixed = statistics.median(t[1] for t in theirs)
    b2_phase = statistics.median(t[2] for t in theirs)
    ns_step = ns_phase / args.steps

    check = to_brian2(circuit, phase, data, state=start, target="cython", record=False)
    check.run(args.steps)
    rel = max(_relative(check.state(n), final_ns[n]) for n in phase.evolve if n in final_ns)
    print(f"{'':<24}{'per step':>14}{'whole phase':>14}")
    print(f"{'neurosim[' + args.backend + ']':<24}{ns_step * 1e6:>11.1f} µs{ns_phase:>12.4f} s")
    print(f"{'brian2[cython]':<24}{b2_step * 1e6:>11.1f} µs{b2_phase:>12.4f} s   "
          f"(of which {b2_fixed:.3f} s set-up per run() call)")
    print(f"ratio brian2 / neurosim: {b2_step / ns_step:.1f}x per step, {b2_phase / ns_phase:.1f}x per phase "
          f"(medians of {args.rounds} interleaved rounds)")
    print(f"final states agree to {rel:.1e} (relative, max over populations)")


if __name__ == "__main__":
    main()
