"""Benchmark: the canonical relaxation on the CPU, every implementation in its own process and best idiom.

Workload (``shared/PERFORMANCE.md``): supervised predictive-coding inference (IL), layers
784-512-512-10, tanh (applied to the input too), input and output clamped, ``--steps`` (100)
synchronous forward-Euler steps of the hidden value nodes with ``dt/tau = 0.1`` from the
feedforward pass, float32 and float64, batch 1 and 256:
``mu_l = W_l f(v_{l-1}) + b_l``, ``e_l = v_l - mu_l``, ``v_l += 0.1 (-e_l + f'(v_l) * W_{l+1}^T e_{l+1})``.

Implementations (``bench/peers/``), each a worker process started with its own interpreter:

* ``numpy`` (``numpy_loop.py``, the project's ``.venv``): the plain numpy loop, the reference;
* ``neurosim`` / ``neurosim-kernel`` (``neurosim_numba.py``, ``.venv``): the IL circuit's
  ``relax`` phase on ``NumbaBackend`` (``PhaseField`` + ``relax``), and the ``relax`` call alone;
* ``jax`` / ``jax-matmul`` (``jax_fori.py``, ``.venv-bench``): one ``jax.jit`` around
  ``lax.fori_loop`` over all steps, products written as ``einsum`` on ``W`` as stored, or as
  ``a @ W.T`` (slower at batch 1 on the benchmark machine); ratios use the faster of the two;
* ``torch`` (``torch_eager.py``, ``.venv-bench``): eager under ``no_grad`` (``torch-compile``
  with ``--torch-compile``);
* ``pcx-scan`` / ``pcx-unrolled`` (``pcx_relax.py``, ``.venv-pcx``): pcx's ``Vode``/energy API,
  SGD on the value nodes, steps in ``pcx.functional.scan`` or unrolled inside ``pcx.functional.jit``.

Every constant input ``W1 tanh(x) + b1`` is computed once per relaxation by every implementation.
The driver draws the weights and batch (seeded), writes them to an ``.npz`` that every worker
loads, computes a float64 numpy reference and checks every implementation's final ``v1, v2``
against it (max relative error). Threads are set the same way for all: every worker is pinned
with ``taskset -c 0`` (1 thread) or ``taskset -c 0,1`` (2 threads), with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``, torch's
``set_num_threads``, ``NumbaBackend(threads=...)`` and, since XLA ignores ``OMP_NUM_THREADS``,
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` at 1 thread.
All workers of a configuration are alive together but only one runs at a time: round ``r``
asks every implementation in turn (order rotated by one each round) for enough back-to-back
runs to fill ``--min-round-s``; the per-step time is the median over all timed runs / steps.

Run (from the repository root, peers' environments as in ``docs/results/bench_relaxation.md``):
``.venv/bin/python bench/bench_relaxation.py --threads 1,2 --json out/bench_relaxation.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = Path(__file__).resolve().parent / "peers"
SIZES = (784, 512, 512, 10)
GAMMA = 0.1


@dataclass(frozen=True)
class Peer:
    """A worker script, the interpreter it runs under and the variants it serves."""

    script: str
    python: str
    variants: tuple[str, ...]
    extra_args: tuple[str, ...] = ()


PEERS: dict[str, Peer] = {
    "numpy": Peer("numpy_loop.py", ".venv/bin/python", ("numpy",)),
    "neurosim": Peer("neurosim_numba.py", ".venv/bin/python", ("neurosim", "neurosim-kernel")),
    "jax": Peer("jax_fori.py", ".venv-bench/bin/python", ("jax", "jax-matmul")),
    "torch": Peer("torch_eager.py", ".venv-bench/bin/python", ("torch",)),
    "pcx": Peer("pcx_relax.py", ".venv-pcx/bin/python", ("pcx-scan", "pcx-unrolled")),
}


# -- the problem and its reference ----------------------------------------------------------------
def make_problem(batch: int, dtype: str, steps: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Weights ``N(0, 1/fan_in)``, biases ``N(0, 0.1^2)``, a batch ``x ~ N(0, 1)``, targets and the feedforward start.

    The arrays are drawn in float64 and rounded to ``dtype``; ``v1, v2`` are the feedforward
    pass computed in ``dtype`` (``v1 = W1 tanh(x) + b1``, ``v2 = W2 tanh(v1) + b2``).
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    p: dict[str, np.ndarray] = {}
    for l in (1, 2, 3):
        p[f"W{l}"] = (rng.normal(size=(SIZES[l], SIZES[l - 1])) / np.sqrt(SIZES[l - 1])).astype(dt)
        p[f"b{l}"] = rng.normal(scale=0.1, size=SIZES[l]).astype(dt)
    p["x"] = rng.normal(size=(batch, SIZES[0])).astype(dt)
    p["y"] = rng.normal(size=(batch, SIZES[3])).astype(dt)
    p["v1"] = np.tanh(p["x"]) @ p["W1"].T + p["b1"]
    p["v2"] = np.tanh(p["v1"]) @ p["W2"].T + p["b2"]
    p["steps"] = np.array(steps)
    p["gamma"] = np.array(GAMMA)
    return p


def reference(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The final ``v1, v2`` of the relaxation computed in float64 from the (rounded) problem arrays."""
    q = {k: np.asarray(v, np.float64) for k, v in p.items()}
    m1 = np.tanh(q["x"]) @ q["W1"].T + q["b1"]
    v1, v2 = q["v1"], q["v2"]
    for _ in range(int(p["steps"])):
        f1, f2 = np.tanh(v1), np.tanh(v2)
        e1 = v1 - m1
        e2 = v2 - (f1 @ q["W2"].T + q["b2"])
        e3 = q["y"] - (f2 @ q["W3"].T + q["b3"])
        v1 = v1 + GAMMA * (-e1 + (1 - f1 * f1) * (e2 @ q["W2"]))
        v2 = v2 + GAMMA * (-e2 + (1 - f2 * f2) * (e3 @ q["W3"]))
    return v1, v2


def max_rel_error(got: tuple, ref: tuple) -> float:
    """Largest ``max|got - ref| / max|ref|`` over ``v1`` and ``v2``."""
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - r)) / float(np.max(np.abs(r))))
               for g, r in zip(got, ref))


# -- workers --------------------------------------------------------------------------------------
def thread_env(threads: int) -> dict[str, str]:
    """The environment every worker gets for ``threads`` threads (on top of the caller's)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    env["PYTHONUNBUFFERED"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def cpu_list(threads: int) -> str:
    """``taskset -c`` argument: cores ``0 .. threads-1``."""
    return ",".join(str(i) for i in range(threads))


@dataclass
class Worker:
    """A running worker process (see ``peers/_worker.py`` for the protocol)."""

    name: str
    proc: subprocess.Popen
    out_path: str
    ready: dict = field(default_factory=dict)
    suffix: str = ""

    def ask(self, msg: dict) -> dict:
        """Send one request line and read the answer line."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died: {self.stderr_tail()}")
        return json.loads(line)

    def stderr_tail(self) -> str:
        """The end of the worker's stderr (after it exited)."""
        self.proc.wait(timeout=30)
        return (self.proc.stderr.read() if self.proc.stderr else "")[-2000:]

    def close(self) -> None:
        """Tell the worker to quit and wait for it."""
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write('{"quit": true}\n')
                self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def parse_spec(spec: str) -> tuple[str, int | None, dict[str, str], str]:
    """Split a peer spec ``NAME[/THREADS][+KEY=VALUE...]`` into name, thread override, env and label suffix.

    ``neurosim/1`` runs the neurosim worker on 1 thread whatever ``--threads`` says;
    ``neurosim+OPENBLAS_THREAD_TIMEOUT=1`` adds that variable to its environment. The suffix
    (``/1``, ``+OPENBLAS_THREAD_TIMEOUT=1``) is appended to the worker's variant names.
    """
    head, *envs = spec.split("+")
    name, _, t = head.partition("/")
    env = dict(kv.split("=", 1) for kv in envs)
    return name, (int(t) if t else None), env, spec[len(name):]


def start_worker(spec: str, problem_path: str, workdir: str, threads: int, extra_env: dict[str, str]) -> Worker:
    """Start the worker of ``spec`` (see :func:`parse_spec`) pinned to its threads' cores; wait until it is warm.

    Parameters
    ----------
    spec : str
        Peer spec, e.g. ``jax``, ``neurosim/1`` or ``neurosim+OPENBLAS_THREAD_TIMEOUT=1``.
    problem_path, workdir : str
        The problem ``.npz`` and where the worker writes its final states.
    threads : int
        Threads (and cores ``0 .. threads-1``) unless the spec overrides them.
    extra_env : dict
        Environment added for every worker (``--env``).
    """
    name, t_override, spec_env, suffix = parse_spec(spec)
    peer = PEERS[name]
    threads = t_override or threads
    python = ROOT / peer.python
    if not python.exists():
        raise FileNotFoundError(f"{peer.python} is missing (create that virtual environment)")
    out_path = os.path.join(workdir, f"{len(os.listdir(workdir))}-out.npz")
    cmd = ["taskset", "-c", cpu_list(threads), str(python), str(PEER_DIR / peer.script), problem_path, out_path,
           str(threads), *peer.extra_args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**thread_env(threads), **extra_env, **spec_env}, cwd=str(ROOT))
    w = Worker(spec, proc, out_path)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError(f"worker {spec} failed to start: {w.stderr_tail()}")
    w.ready = json.loads(line)
    w.suffix = suffix
    return w


# -- one configuration ----------------------------------------------------------------------------
def bench_config(dtype: str, batch: int, threads: int, steps: int, rounds: int, min_round_s: float,
                 peers: list[str], extra_env: dict[str, str]) -> dict:
    """Time every implementation on one (dtype, batch, threads) configuration.

    Returns
    -------
    dict
        ``per_step_s`` (median, per implementation), ``spread`` (inter-quartile range / median),
        ``max_rel_error_vs_f64``, ``first_call_s`` (compile + first run), ``versions``, ``notes``
        (implementations that did not run, and why) and ``ratios`` (``neurosim / peer``).
    """
    problem = make_problem(batch, dtype, steps)
    ref = reference(problem)
    result: dict = {"dtype": dtype, "batch": batch, "threads": threads, "steps": steps, "per_step_s": {},
                    "spread": {}, "max_rel_error_vs_f64": {}, "first_call_s": {}, "versions": {}, "notes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_relax_") as work:
        problem_path = os.path.join(work, "problem.npz")
        np.savez(problem_path, **problem)
        workers: list[Worker] = []
        try:
            for spec in peers:
                try:
                    w = start_worker(spec, problem_path, work, threads, extra_env)
                except (RuntimeError, FileNotFoundError) as err:
                    result["notes"][spec] = str(err).strip().splitlines()[-1][:300]
                    continue
                workers.append(w)
                versions = w.ready["versions"]
                if spec.startswith("pcx") and "jax" in versions:  # pcx's own (older) jax
                    versions["jax (pcx)"] = versions.pop("jax")
                result["versions"].update(versions)
                with np.load(w.out_path) as finals:
                    for v in w.ready["variants"]:
                        err = max_rel_error((finals[f"{v}.v1"], finals[f"{v}.v2"]), ref)
                        result["max_rel_error_vs_f64"][v + w.suffix] = err
                        result["first_call_s"][v + w.suffix] = w.ready["first_s"][v]
            jobs = [(w, v, max(1, round(min_round_s / max(w.ready["warm_s"][v], 1e-6))))
                    for w in workers for v in w.ready["variants"]]
            times: dict[str, list[float]] = {v + w.suffix: [] for w, v, _ in jobs}
            for r in range(rounds):
                shift = r % max(len(jobs), 1)
                for w, v, reps in jobs[shift:] + jobs[:shift]:
                    times[v + w.suffix] += w.ask({"variant": v, "reps": reps})["times"]
        finally:
            for w in workers:
                w.close()
    for v, ts in times.items():
        med = statistics.median(ts)
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [med, med, med]
        result["per_step_s"][v] = med / steps
        result["spread"][v] = (q[2] - q[0]) / med
    t = result["per_step_s"]
    jax_times = [t[k] for k in ("jax", "jax-matmul") if k in t]
    if jax_times:
        t["jax-best"] = min(jax_times)
    if "neurosim" in t:
        result["ratios"] = {f"neurosim/{k}": t["neurosim"] / t[k] for k in t if k != "neurosim"}
        if "neurosim-kernel" in t and "jax" in t:
            result["ratios"]["neurosim-kernel/jax-best"] = t["neurosim-kernel"] / t["jax-best"]
    return result


# -- reporting ------------------------------------------------------------------------------------
ORDER = ("numpy", "jax", "jax-matmul", "jax-best", "torch", "torch-compile", "pcx-scan", "pcx-unrolled",
         "neurosim", "neurosim-kernel")


def fmt_time(s: float) -> str:
    """Seconds as µs below 1 ms, else ms, three significant digits."""
    return f"{s * 1e6:.3g} µs" if s < 1e-3 else f"{s * 1e3:.3g} ms"


def markdown(results: list[dict]) -> str:
    """One table per thread count: per-step medians, then ratios neurosim / peer (< 1: neurosim faster)."""
    out = []
    for threads in sorted({r["threads"] for r in results}):
        rs = [r for r in results if r["threads"] == threads]
        cols = [c for c in ORDER if any(c in r["per_step_s"] for r in rs)]
        cols += sorted({c for r in rs for c in r["per_step_s"] if c not in ORDER})
        ratio_cols = [c for c in ("jax-best", "numpy", "torch", "pcx-scan", "pcx-unrolled")
                      if c in cols and "neurosim" in cols]
        out.append(f"\n**{threads} thread(s)** (time per step, median; ratio = neurosim / peer, "
                   "< 1: neurosim faster)\n")
        kernel_col = "jax-best" in cols and "neurosim-kernel" in cols
        head = ["dtype, batch", *cols, *(f"neurosim / {c}" for c in ratio_cols)] + (["kernel / jax-best"] * kernel_col)
        out.append("| " + " | ".join(head) + " |")
        out.append("|---" * len(head) + "|")
        for r in rs:
            t = r["per_step_s"]
            row = [f"{r['dtype'].replace('float', 'f')}, {r['batch']}"]
            row += [fmt_time(t[c]) if c in t else "–" for c in cols]
            row += [f"{t['neurosim'] / t[c]:.2f}" if c in t and "neurosim" in t else "–" for c in ratio_cols]
            if kernel_col:
                ok = "jax-best" in t and "neurosim-kernel" in t
                row.append(f"{t['neurosim-kernel'] / t['jax-best']:.2f}" if ok else "–")
            out.append("| " + " | ".join(row) + " |")
        errs = {}
        for r in rs:
            for k, e in r["max_rel_error_vs_f64"].items():
                errs.setdefault((r["dtype"], k), []).append(e)
        out.append("\nmax relative error of the final state vs the float64 reference: "
                   + "; ".join(f"{k} {d.replace('float', 'f')} {max(v):.1e}" for (d, k), v in sorted(errs.items())))
        spreads = {}
        for r in rs:
            for k, v in r["spread"].items():
                spreads[k] = max(spreads.get(k, 0.0), v)
        out.append("\nnoise: largest inter-quartile range / median of the timed runs over these cells: "
                   + "; ".join(f"{k} {100 * v:.0f} %" for k, v in spreads.items()))
        notes = {k: v for r in rs for k, v in r["notes"].items()}
        for k, v in notes.items():
            out.append(f"\n{k}: not run ({v})")
    return "\n".join(out)


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run every configuration, print the tables and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1", help="comma list of thread counts, e.g. 1,2")
    ap.add_argument("--batches", default="1,256", help="comma list of batch sizes")
    ap.add_argument("--dtypes", default="float32,float64", help="comma list of float32, float64")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--min-round-s", type=float, default=0.3,
                    help="back-to-back runs per implementation and round fill at least this long")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--peers", default="numpy,neurosim,jax,torch,pcx",
                    help=f"comma list of {', '.join(PEERS)}, torch-compile; a peer may carry a thread count "
                         "and environment: neurosim/1, neurosim+OPENBLAS_THREAD_TIMEOUT=1")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for every worker (e.g. OPENBLAS_THREAD_TIMEOUT=1)")
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args(argv)
    peers = [s for s in args.peers.split(",") if s]
    if "torch-compile" in peers:
        peers.remove("torch-compile")
        PEERS["torch"] = Peer("torch_eager.py", ".venv-bench/bin/python", ("torch", "torch-compile"), ("compile",))
        if "torch" not in peers:
            peers.append("torch")
    unknown = [p for p in peers if parse_spec(p)[0] not in PEERS]
    if unknown:
        ap.error(f"unknown peers {unknown}; known: {list(PEERS)}")
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    load_start = os.getloadavg()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; load average {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f}; peers {peers}; extra env {extra_env or '-'}", flush=True)
    results = []
    t0 = time.time()
    for threads in map(int, args.threads.split(",")):
        for dtype in args.dtypes.split(","):
            for batch in map(int, args.batches.split(",")):
                load = os.getloadavg()[0]
                r = bench_config(dtype, batch, threads, args.steps, args.rounds, args.min_round_s, peers, extra_env)
                r["load_before"], r["load_after"] = load, os.getloadavg()[0]
                results.append(r)
                print(f"{dtype} batch {batch} threads {threads}: "
                      + ", ".join(f"{k} {fmt_time(v)}" for k, v in r["per_step_s"].items())
                      + f" (load {load:.1f} -> {r['load_after']:.1f})", flush=True)
    load_end = os.getloadavg()
    table = markdown(results)
    print(table)
    versions = {k: v for r in results for k, v in r["versions"].items() if k != "path"}
    print(f"\nversions: {versions}\nnumba path: {next((r['versions'].get('path') for r in results), '')}")
    print(f"load average at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; "
          f"wall {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"cpu": cpu_name(), "cpus": os.cpu_count(), "load_start": load_start, "load_end": load_end,
                       "argv": sys.argv, "extra_env": extra_env, "versions": versions, "results": results,
                       "markdown": table}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
