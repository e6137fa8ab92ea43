"""Benchmark: the canonical relaxation on a GPU, neurosim's cupy backend against PyTorch and JAX.

Workload (``PERFORMANCE.md``): supervised predictive-coding inference (IL), layers
784-512-512-10, tanh (applied to the input too), input and output clamped, ``--steps`` (100)
synchronous forward-Euler steps of the hidden value nodes with ``dt/tau = 0.1``, float32,
at batch 1, 256 and 4096:
``mu_l = W_l f(v_{l-1}) + b_l``, ``e_l = v_l - mu_l``, ``v_l += 0.1 (-e_l + f'(v_l) ⊙ W_{l+1}^T e_{l+1})``,
starting from the feedforward pass. Every implementation also keeps the per-step residual
``max |Δv_l|`` of each hidden layer on the device (neurosim needs it for its convergence log)
and computes ``W_1 f(v_0)`` once per relaxation.

* neurosim: the IL circuit's ``relax`` phase (no stopping rule), one ``PhaseField`` plus
  ``CupyBackend.relax`` per relaxation, as the simulator runs it;
* PyTorch: the same equations as eager CUDA tensor operations (TF32 off);
* JAX: the same equations in ``jit`` + ``lax.fori_loop`` (matmul precision ``highest``).

Reported per batch: seconds per step (median of ``--repeats`` interleaved rounds after a
warm-up), the fraction of the GPU's GEMM rate measured in the same run (large square float32
GEMM) reached with the nominal FLOPs of a step (5 products, as ``PERFORMANCE.md`` counts them),
and the ratio of each peer's time to neurosim's (> 1: neurosim faster). Peers that are not
importable are skipped. Targets: faster than both peers at every batch; >= 60 % of the GEMM
rate at batch 4096.

Run: ``python bench/bench_relaxation_gpu.py [--batches 1,256,4096] [--steps 100] [--repeats 5]
[--graph-steps 8] [--json FILE]``. Without CuPy or a CUDA device it says so and exits 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import numpy as np

from neurosim import circuits
from neurosim.backends.cupy_backend import INSTALL_HINT, CupyBackend, cupy_unavailable_reason
from neurosim.dynamics import PhaseField

SIZES = (784, 512, 512, 10)
GAMMA = 0.1


def nominal_flops(batch: int) -> float:
    """FLOPs of one step as PERFORMANCE.md counts them: 2·B·n_in·n_out for 5 products."""
    d0, d1, d2, d3 = SIZES
    return 2.0 * batch * (d0 * d1 + d1 * d2 + d2 * d3 + d2 * d1 + d3 * d2)


@dataclasses.dataclass
class Problem:
    """Weights, biases, clamped input/target and the feedforward start, float32 host arrays."""

    circuit: object
    phase: object
    weights: dict
    biases: dict
    x: np.ndarray
    y: np.ndarray
    v1: np.ndarray
    v2: np.ndarray


def make_problem(batch: int, steps: int, rng: np.random.Generator) -> Problem:
    il = circuits.get("il")
    circuit = il.build(list(SIZES), "tanh", "mse", seed=0)
    relax = next(p for p in il.schedule(circuit, gamma=GAMMA).phases if p.name == "relax")
    phase = dataclasses.replace(relax, until=None, max_ms=relax.dt_ms * steps)
    w = {k: v.astype(np.float32) for k, v in circuit.initial_weights().items()}
    b = {k: rng.normal(0, 0.1, size=v.shape).astype(np.float32) for k, v in circuit.initial_biases().items()}
    x = np.tanh(rng.normal(size=(batch, SIZES[0]))).astype(np.float32)  # f(v0): tanh applied to the input
    y = rng.normal(size=(batch, SIZES[3])).astype(np.float32)
    v1 = x @ w["W1"].T + b["mu1"]
    v2 = np.tanh(v1) @ w["W2"].T + b["mu2"]
    return Problem(circuit, phase, w, b, x, y, v1, v2)


# -- neurosim ------------------------------------------------------------------------------------

def neurosim_runner(p: Problem, backend: CupyBackend):
    cp = backend.xp
    weights = {k: cp.asarray(v) for k, v in p.weights.items()}
    biases = {k: cp.asarray(v) for k, v in p.biases.items()}
    batch = p.x.shape[0]
    state = {pop.name: cp.zeros((batch, pop.size), dtype=np.float32) for pop in p.circuit.populations}
    mu3 = np.tanh(p.v2) @ p.weights["W3"].T + p.biases["mu3"]
    # the feedforward pass, as the forward phase leaves it (mu1 = W1 f(v0) + b1 may be held, not recomputed)
    state.update({k: cp.asarray(v) for k, v in dict(x0=p.x, x1=p.v1, x2=p.v2, x3=p.y, mu1=p.v1, mu2=p.v2,
                                                    mu3=mu3).items()})

    def run():
        field = PhaseField(p.circuit, p.phase, weights, biases, state, {}, cp)
        result = backend.relax(field, p.phase, {n: state[n] for n in field.integrated}, 0.0)
        return result.state["x1"], result

    return run


# -- PyTorch ---------------------------------------------------------------------------------------

def torch_runner(p: Problem, steps: int):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    t = {k: torch.as_tensor(v, device=dev) for k, v in {**p.weights, **p.biases}.items()}
    x, y, v1_0, v2_0 = (torch.as_tensor(a, device=dev) for a in (p.x, p.y, p.v1, p.v2))
    W1, W2, W3, b1, b2, b3 = t["W1"], t["W2"], t["W3"], t["mu1"], t["mu2"], t["mu3"]

    @torch.no_grad()
    def run():
        mu1 = torch.addmm(b1, x, W1.T)
        v1, v2 = v1_0.clone(), v2_0.clone()
        res = torch.empty((steps, 2), device=dev)
        for k in range(steps):
            f1, f2 = torch.tanh(v1), torch.tanh(v2)
            e1 = v1 - mu1
            e2 = v2 - torch.addmm(b2, f1, W2.T)
            e3 = y - torch.addmm(b3, f2, W3.T)
            d1 = GAMMA * (-e1 + (1 - f1 * f1) * (e2 @ W2))
            d2 = GAMMA * (-e2 + (1 - f2 * f2) * (e3 @ W3))
            v1, v2 = v1 + d1, v2 + d2
            res[k, 0], res[k, 1] = d1.abs().amax(), d2.abs().amax()
        torch.cuda.synchronize()
        return v1

    return run, lambda a: a.cpu().numpy()


# -- JAX -------------------------------------------------------------------------------------------

def jax_runner(p: Problem, steps: int):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_default_matmul_precision", "highest")
    gpu = jax.devices("gpu")[0]
    a = {k: jax.device_put(v, gpu) for k, v in {**p.weights, **p.biases, "x": p.x, "y": p.y, "v1": p.v1,
                                                "v2": p.v2}.items()}

    @jax.jit
    def relax(a):
        mu1 = a["x"] @ a["W1"].T + a["mu1"]

        def body(k, carry):
            v1, v2, res = carry
            f1, f2 = jnp.tanh(v1), jnp.tanh(v2)
            e1 = v1 - mu1
            e2 = v2 - (f1 @ a["W2"].T + a["mu2"])
            e3 = a["y"] - (f2 @ a["W3"].T + a["mu3"])
            d1 = GAMMA * (-e1 + (1 - f1 * f1) * (e2 @ a["W2"]))
            d2 = GAMMA * (-e2 + (1 - f2 * f2) * (e3 @ a["W3"]))
            res = res.at[k].set(jnp.stack([jnp.max(jnp.abs(d1)), jnp.max(jnp.abs(d2))]))
            return v1 + d1, v2 + d2, res

        return jax.lax.fori_loop(0, steps, body, (a["v1"], a["v2"], jnp.zeros((steps, 2), jnp.float32)))

    def run():
        v1, _, res = relax(a)
        res.block_until_ready()
        return v1

    return run, np.asarray


# -- measurement -----------------------------------------------------------------------------------

def gemm_rate(cp, n: int = 8192, repeats: int = 10) -> float:
    """Measured float32 GEMM rate (FLOP/s) of an n×n×n product."""
    a = cp.random.standard_normal((n, n), dtype=cp.float32)
    b = cp.random.standard_normal((n, n), dtype=cp.float32)
    c = a @ b
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(repeats):
        cp.matmul(a, b, out=c)
    stop.record()
    stop.synchronize()
    return 2.0 * n ** 3 * repeats / (cp.cuda.get_elapsed_time(start, stop) / 1e3)


def timed(run, sync) -> float:
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - t0


def peers(p: Problem, steps: int) -> dict:
    """Runners of the peers that import and see the GPU; a reason for the others."""
    out = {}
    for name, make in (("pytorch", torch_runner), ("jax", jax_runner)):
        try:
            out[name] = make(p, steps)
        except Exception as err:  # not installed, or no GPU build
            out[name] = f"skipped ({type(err).__name__}: {err})"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,256,4096", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (median reported)")
    ap.add_argument("--graph-steps", type=int, default=8, help="CupyBackend graph_steps (0: eager launches)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    reason = cupy_unavailable_reason()
    if reason is not None:
        print(f"no CUDA GPU/cupy here ({reason}); nothing to benchmark. On a GPU machine: {INSTALL_HINT}")
        return 0
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU's memory to all three
    import cupy as cp

    if os.environ.get("CUPY_TF32", "0") != "0":
        print("warning: CUPY_TF32 is set: cuBLAS float32 products run in TF32, unlike the peers", file=sys.stderr)
    backend = CupyBackend("float32", graph_steps=args.graph_steps)
    rate = gemm_rate(cp)
    print(f"GPU: {backend.runtime.name}; float32 GEMM rate (8192³): {rate / 1e12:.2f} TFLOP/s; "
          f"IL {'-'.join(map(str, SIZES))} tanh, {args.steps} steps, dt/tau={GAMMA}, float32, "
          f"graph_steps={args.graph_steps}")
    rng = np.random.default_rng(0)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        p = make_problem(batch, args.steps, rng)
        runners = {"neurosim": (neurosim_runner(p, backend), cp.asnumpy)}
        runners.update(peers(p, args.steps))
        live = {k: v for k, v in runners.items() if not isinstance(v, str)}
        finals = {}
        for name, (run, to_host) in live.items():  # warm-up: compile, capture, allocate
            out = run()
            finals[name] = to_host(out[0] if name == "neurosim" else out)
        times: dict = {k: [] for k in live}
        sync = cp.cuda.runtime.deviceSynchronize
        for _ in range(args.repeats):
            for name, (run, _) in live.items():
                times[name].append(timed(run, sync) / args.steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        scale = max(np.max(np.abs(finals["neurosim"])), 1e-30)
        agree = {k: float(np.max(np.abs(finals[k] - finals["neurosim"])) / scale) for k in finals if k != "neurosim"}
        row = {"batch": batch, "s_per_step": med, "gemm_fraction": nominal_flops(batch) / med["neurosim"] / rate,
               "ratio_peer_over_neurosim": {k: med[k] / med["neurosim"] for k in med if k != "neurosim"},
               "max_rel_diff_to_neurosim": agree,
               "skipped": {k: v for k, v in runners.items() if isinstance(v, str)}}
        rows.append(row)
        peers_text = "  ".join(f"{k} {med[k] * 1e6:9.1f} µs (×{row['ratio_peer_over_neurosim'][k]:.2f}, "
                               f"Δ {agree[k]:.1e})" for k in med if k != "neurosim")
        print(f"B={batch:5d}  neurosim {med['neurosim'] * 1e6:9.1f} µs/step  "
              f"{100 * row['gemm_fraction']:5.1f} % of GEMM rate  {peers_text}")
        for k, why in row["skipped"].items():
            print(f"         {k}: {why}")
    big = [r for r in rows if r["batch"] >= 4096]
    faster = all(all(v > 1 for v in r["ratio_peer_over_neurosim"].values()) for r in rows)
    print(f"targets: faster than every peer at every batch: {'yes' if faster else 'NO'}; "
          f">= 60 % of the GEMM rate at batch 4096: "
          f"{('yes' if all(r['gemm_fraction'] >= 0.6 for r in big) else 'NO') if big else 'not measured'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"gpu": backend.runtime.name, "gemm_rate_flops": rate, "steps": args.steps, "rows": rows}, fh,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
