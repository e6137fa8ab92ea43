"""Benchmark: the canonical relaxation on the CPU, neurosim's numba backend against numpy and the peers.

Workload (``shared/PERFORMANCE.md``): supervised predictive-coding inference (IL), layers
784-512-512-10, tanh (applied to the input too), input and output clamped, ``--steps`` (100)
synchronous forward-Euler steps of the hidden value nodes with ``dt/tau = 0.1``, from the
feedforward pass, float32 and float64, batch 1 and 256:
``mu_l = W_l f(v_{l-1}) + b_l``, ``e_l = v_l - mu_l``, ``v_l += 0.1 (-e_l + f'(v_l) ⊙ W_{l+1}^T e_{l+1})``.

Implementations, all on the same weights and batch, timed in one process:

* ``numpy``: the straightforward numpy loop (5 matrix products per step): the reference;
* ``neurosim-numba``: the IL circuit's ``relax`` phase (no stopping rule) as the simulator runs
  it: ``W_1 f(v_0)`` for the held prediction ``mu1``, one ``PhaseField``, ``NumbaBackend.relax``
  (residual of every population at every step included); ``kernel`` is the relax call alone;
* ``neurosim-numpy``: the same phase on the numpy backend (fewer steps: it is slow);
* ``torch`` (CPU, eager, ``W_1 f(v_0)`` hoisted), ``jax`` (``jit`` + ``lax.fori_loop``) and
  ``pcx`` (its ``Vode``/energy API, inference by SGD on the value nodes at rate 0.1), each
  where importable (they live in separate virtual environments: run this script with each).

Reported per dtype and batch: seconds per step (median of ``--rounds`` interleaved rounds after
a warm-up) and ratios: numpy / neurosim (speed-up), peer / neurosim (> 1: neurosim faster), and
the fraction of the GEMM rate measured in the same run (numpy ``(256,512) @ (512,512)``
products) reached by neurosim with the nominal FLOPs of a step (5 products, as PERFORMANCE.md
counts them) and with the FLOPs it executes (4 products: ``W_1 f(v_0)`` is computed once). Every
implementation's final state is checked against a float64 run of the numpy loop.
``--coretype`` also measures the GEMM rate in subprocesses for each ``OPENBLAS_CORETYPE``.

``--threads N`` runs every implementation on N threads (BLAS, numba, PyTorch, XLA); on a shared
machine under load, single-threaded runs are far less noisy than two-threaded ones.

Run: ``python bench/bench_relaxation.py [--batches 1,256] [--dtypes float32,float64] [--steps 100]
[--rounds 5] [--threads N] [--coretype Haswell,SkylakeX,] [--json FILE]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from neurosim import circuits
from neurosim.backends import NumpyBackend
from neurosim.backends.numba_backend import NumbaBackend
from neurosim.dynamics import PhaseField

SIZES = (784, 512, 512, 10)
GAMMA = 0.1


@dataclass
class Problem:
    """Weights, batch and feedforward start of one benchmark configuration."""

    dtype: np.dtype
    W: list
    b: list
    x: np.ndarray
    y: np.ndarray
    v1: np.ndarray
    v2: np.ndarray


def make_problem(circuit, batch: int, dtype: str, rng: np.random.Generator) -> Problem:
    dt = np.dtype(dtype)
    w = circuit.initial_weights()
    bias = circuit.initial_biases()
    W = [w[f"W{l}"].astype(dt) for l in (1, 2, 3)]
    b = [(bias[f"mu{l}"] + rng.normal(scale=0.1, size=SIZES[l])).astype(dt) for l in (1, 2, 3)]
    x = rng.normal(size=(batch, SIZES[0])).astype(dt)
    y = rng.normal(size=(batch, SIZES[3])).astype(dt)
    v1 = np.tanh(x) @ W[0].T + b[0]
    v2 = np.tanh(v1) @ W[1].T + b[1]
    return Problem(dt, W, b, x, y, v1, v2)


def nominal_flops(batch: int) -> float:
    """FLOPs of one step as PERFORMANCE.md counts them: 5 products."""
    n = SIZES
    return 2.0 * batch * (n[0] * n[1] + 2 * n[1] * n[2] + 2 * n[2] * n[3])


def executed_flops(batch: int) -> float:
    """FLOPs of the 4 products a step needs once ``W_1 f(v_0)`` is hoisted."""
    n = SIZES
    return 2.0 * batch * (2 * n[1] * n[2] + 2 * n[2] * n[3])


# -- implementations: each returns run() -> (v1, v2) ----------------------------------------------
def numpy_runner(p: Problem, steps: int):
    W1, W2, W3 = p.W
    b1, b2, b3 = p.b
    g = p.dtype.type(GAMMA)
    one = p.dtype.type(1.0)

    def run():
        v1, v2 = p.v1, p.v2
        for _ in range(steps):
            f0, f1, f2 = np.tanh(p.x), np.tanh(v1), np.tanh(v2)
            e1 = v1 - (f0 @ W1.T + b1)
            e2 = v2 - (f1 @ W2.T + b2)
            e3 = p.y - (f2 @ W3.T + b3)
            v1 = v1 + g * (-e1 + (one - f1 * f1) * (e2 @ W2))
            v2 = v2 + g * (-e2 + (one - f2 * f2) * (e3 @ W3))
        return v1, v2

    return run


class NeurosimRun:
    """The IL circuit's relax phase on one backend, set up the way the simulator sets it up."""

    def __init__(self, p: Problem, steps: int, backend):
        il = circuits.get("il")
        self.circuit = il.build(list(SIZES), "tanh", "mse", seed=0)
        relax = il.schedule(self.circuit, gamma=GAMMA, max_steps=steps).phase("relax")
        from neurosim.schedule import Phase

        self.phase = Phase("relax", evolve=relax.evolve, clamp=relax.clamp, dt_ms=relax.dt_ms, max_ms=relax.max_ms)
        self.p, self.backend = p, backend
        self.weights = {"W1": p.W[0], "W2": p.W[1], "W3": p.W[2]}
        self.biases = {f"mu{l}": p.b[l - 1] for l in (1, 2, 3)}
        for proj in self.circuit.projections:  # the one-to-one wiring, in the working dtype
            if not proj.tied and proj.name not in self.weights:
                self.weights[proj.name] = proj.weights.astype(p.dtype)
        self.batch = p.x.shape[0]

    def field(self):
        p = self.p
        x0 = np.tanh(p.x)
        state = {q.name: np.zeros((self.batch, q.size), p.dtype) for q in self.circuit.populations}
        state.update(x0=x0, x1=p.v1, x2=p.v2, x3=p.y, mu1=x0 @ p.W[0].T + p.b[0])
        return PhaseField(self.circuit, self.phase, self.weights, self.biases, state, {}, np), state

    def run(self):
        field, state = self.field()
        res = self.backend.relax(field, self.phase, {n: state[n] for n in field.integrated}, 0.0)
        return res.state["x1"], res.state["x2"]

    def kernel_runner(self):
        field, state = self.field()
        y0 = {n: state[n] for n in field.integrated}

        def run():
            res = self.backend.relax(field, self.phase, y0, 0.0)
            return res.state["x1"], res.state["x2"]

        return run


THREADS = os.cpu_count() or 1


def torch_runner(p: Problem, steps: int):
    import torch

    torch.set_num_threads(THREADS)
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
         dict(W1=p.W[0], W2=p.W[1], W3=p.W[2], b1=p.b[0], b2=p.b[1], b3=p.b[2], x=p.x, y=p.y, v1=p.v1, v2=p.v2).items()}

    def run():
        with torch.no_grad():
            W2, W3, b2, b3, y = t["W2"], t["W3"], t["b2"], t["b3"], t["y"]
            m1 = torch.tanh(t["x"]) @ t["W1"].T + t["b1"]
            v1, v2 = t["v1"], t["v2"]
            for _ in range(steps):
                f1, f2 = torch.tanh(v1), torch.tanh(v2)
                e1 = v1 - m1
                e2 = v2 - (f1 @ W2.T + b2)
                e3 = y - (f2 @ W3.T + b3)
                v1 = v1 + GAMMA * (-e1 + (1 - f1 * f1) * (e2 @ W2))
                v2 = v2 + GAMMA * (-e2 + (1 - f2 * f2) * (e3 @ W3))
            return v1.numpy(), v2.numpy()

    return run


def jax_runner(p: Problem, steps: int):
    import jax
    import jax.numpy as jnp

    if p.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)

    @jax.jit
    def relax(W1, W2, W3, b1, b2, b3, x, y, v1, v2):
        m1 = jnp.tanh(x) @ W1.T + b1

        def body(_, c):
            v1, v2 = c
            f1, f2 = jnp.tanh(v1), jnp.tanh(v2)
            e1 = v1 - m1
            e2 = v2 - (f1 @ W2.T + b2)
            e3 = y - (f2 @ W3.T + b3)
            return (v1 + GAMMA * (-e1 + (1 - f1 * f1) * (e2 @ W2)), v2 + GAMMA * (-e2 + (1 - f2 * f2) * (e3 @ W3)))

        return jax.lax.fori_loop(0, steps, body, (v1, v2))

    args = [jnp.asarray(a) for a in (*p.W, *p.b, p.x, p.y, p.v1, p.v2)]

    def run():
        v1, v2 = relax(*args)
        return np.asarray(v1.block_until_ready()), np.asarray(v2)

    return run


def pcx_runner(p: Problem, steps: int):
    from _bench_pcx import make_pcx_runner

    return make_pcx_runner(p, steps, GAMMA)


PEERS = {"torch": torch_runner, "jax": jax_runner, "pcx": pcx_runner}


# -- timing ---------------------------------------------------------------------------------------
def gemm_rate(dtype: str, repeats: int = 30) -> float:
    """GFLOP/s of numpy's ``(256, 512) @ (512, 512)`` (median of single products)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(256, 512)).astype(dtype)
    w = rng.normal(size=(512, 512)).astype(dtype)
    out = np.empty((256, 512), dtype)
    np.matmul(a, w, out=out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, w, out=out)
        times.append(time.perf_counter() - t0)
    return 2.0 * 256 * 512 * 512 / statistics.median(times) / 1e9


def coretype_rates(coretypes: list[str]) -> dict:
    """GEMM rates measured in subprocesses with each ``OPENBLAS_CORETYPE`` ('' = unset: autodetect)."""
    code = ("import sys; sys.path.insert(0, %r); import bench_relaxation as b; "
            "print(b.gemm_rate('float32'), b.gemm_rate('float64'))" % os.path.dirname(os.path.abspath(__file__)))
    out = {}
    for ct in coretypes:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS))
        env.pop("OPENBLAS_CORETYPE", None)
        if ct:
            env["OPENBLAS_CORETYPE"] = ct
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        key = ct or "unset"
        if proc.returncode != 0:
            out[key] = f"failed ({'illegal instruction: the CPU lacks these kernels' if proc.returncode == -4 else proc.returncode})"
        else:
            f32, f64 = map(float, proc.stdout.split()[-2:])
            out[key] = {"float32": f32, "float64": f64}
    return out


def max_rel_error(got, ref) -> float:
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - r)) / float(np.max(np.abs(r)))) for g, r in zip(got, ref))


def bench_config(dtype: str, batch: int, steps: int, rounds: int, numpy_backend_steps: int, peers: list[str]) -> dict:
    rng = np.random.default_rng(1)
    circuit = circuits.get("il").build(list(SIZES), "tanh", "mse", seed=0)
    p = make_problem(circuit, batch, dtype, rng)
    p64 = Problem(np.dtype("float64"), [w.astype(np.float64) for w in p.W], [b.astype(np.float64) for b in p.b],
                  p.x.astype(np.float64), p.y.astype(np.float64), p.v1.astype(np.float64), p.v2.astype(np.float64))
    ref = numpy_runner(p64, steps)()
    numba = NeurosimRun(p, steps, NumbaBackend(dtype, threads=THREADS))
    runners = {"numpy": (numpy_runner(p, steps), steps), "neurosim-numba": (numba.run, steps),
               "kernel": (numba.kernel_runner(), steps)}
    nb_steps = min(steps, numpy_backend_steps)
    if nb_steps > 0:
        runners["neurosim-numpy"] = (NeurosimRun(p, nb_steps, NumpyBackend(dtype)).run, nb_steps)
    notes = {}
    for name in peers:
        try:
            runners[name] = (PEERS[name](p, steps), steps)
        except ImportError as err:
            notes[name] = f"not importable here ({err.name or err})"
    errors = {}
    for name, (run, n) in list(runners.items()):
        out = run()  # warm-up (compilation, caches)
        if n == steps:
            errors[name] = max_rel_error(out, ref)
    times: dict[str, list] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (run, n) in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t0) / n)
    per_step = {name: statistics.median(ts) for name, ts in times.items()}
    rate = statistics.median([gemm_rate(dtype) for _ in range(3)])
    t_nb = per_step["neurosim-numba"]
    return {
        "dtype": dtype, "batch": batch, "steps": steps, "per_step_s": per_step, "max_rel_error_vs_f64": errors,
        "notes": notes, "gemm_gflops": rate, "path": numba.backend.paths.get("relax", ""),
        "speedup_vs_numpy": per_step["numpy"] / t_nb,
        "speedup_vs_neurosim_numpy": per_step["neurosim-numpy"] / t_nb if "neurosim-numpy" in per_step else None,
        "peer_over_neurosim": {k: per_step[k] / t_nb for k in peers if k in per_step},
        "gemm_fraction_nominal": nominal_flops(batch) / t_nb / 1e9 / rate,
        "gemm_fraction_executed": executed_flops(batch) / t_nb / 1e9 / rate,
    }


def report(r: dict) -> str:
    lines = [f"{r['dtype']} batch {r['batch']} ({r['steps']} steps; numba path: {r['path']})"]
    for name, t in sorted(r["per_step_s"].items(), key=lambda kv: kv[1]):
        err = r["max_rel_error_vs_f64"].get(name)
        ratio = t / r["per_step_s"]["neurosim-numba"]
        lines.append(f"  {name:16s} {t * 1e6:11.1f} us/step   x{ratio:6.2f} of neurosim-numba"
                     + ("" if err is None else f"   max rel err vs f64 {err:.1e}"))
    for k, v in r["notes"].items():
        lines.append(f"  {k:16s} {v}")
    lines.append(f"  speed-up vs numpy loop: {r['speedup_vs_numpy']:.2f}x"
                 + ("" if r["speedup_vs_neurosim_numpy"] is None else
                    f"; vs neurosim's numpy backend: {r['speedup_vs_neurosim_numpy']:.1f}x"))
    lines.append(f"  GEMM rate {r['gemm_gflops']:.1f} GFLOP/s; neurosim reaches {100 * r['gemm_fraction_nominal']:.0f}% "
                 f"of it with the nominal FLOPs, {100 * r['gemm_fraction_executed']:.0f}% with the executed ones")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--numpy-backend-steps", type=int, default=10,
                    help="steps timed on neurosim's numpy backend (0: skip it)")
    ap.add_argument("--peers", default="torch,jax,pcx")
    ap.add_argument("--coretype", default=None, help="comma list of OPENBLAS_CORETYPE values for GEMM rates "
                                                     "in subprocesses (empty item: unset)")
    ap.add_argument("--threads", type=int, default=0, help="threads for every implementation (0: all CPUs)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    global THREADS
    if args.threads:
        THREADS = args.threads
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                                   f"{'true' if THREADS > 1 else 'false'} intra_op_parallelism_threads={THREADS}")
        import numba
        import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS: loaded now so that the limit reaches it)
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
        threadpool_limits(THREADS)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    peers = [s for s in args.peers.split(",") if s]
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, {THREADS} thread(s), load "
          f"{os.getloadavg()[0]:.1f}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    results = []
    for dtype in args.dtypes.split(","):
        for batch in map(int, args.batches.split(",")):
            r = bench_config(dtype, batch, args.steps, args.rounds, args.numpy_backend_steps, peers)
            print(report(r), flush=True)
            results.append(r)
    out = {"results": results, "threads": THREADS, "load_end": os.getloadavg()[0]}
    if args.coretype is not None:
        out["coretype_gemm_gflops"] = coretype_rates(args.coretype.split(","))
        print("GEMM rates by OPENBLAS_CORETYPE:", json.dumps(out["coretype_gemm_gflops"]))
    print(f"load at the end {out['load_end']:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
