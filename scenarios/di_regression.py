"""Dynamic inversion on teacher–student regression: DI vs NDI vs SLDI vs BP vs FA vs PBP.

The two tasks of Podlaski & Machens (2020, Fig. 3; ALGORITHMS.md §4.4): a linear 30-20-10
network and a tanh 30-20-10-10 network learn from a teacher of the same shape, online (batch 1)
with learning rate 0.01. Every model starts from the same forward weights and sees the same
samples. (Without ``init_range`` every circuit draws the same ``W`` from the seed; with it, BP and FA get the
DI circuits' ``U(-r, r)`` draw.) Training is split into blocks of ``eval_every`` samples; after each block the test loss
(MSE, mean over test samples) goes into the trace metrics, so each trace holds a loss curve; DI,
NDI and SLDI add the loops' spectral abscissa and the SSA repairs of that block, and DI/SLDI the
mean relaxation steps and simulated time per sample. One trace per task and model
(``<out>/<task>_<model>.h5``); the summary table goes to ``<out>/table.md``. The traces hold the
metrics only, unless ``phase_log=true`` (then every phase of every trial too: about 4x slower).
The default backend is numba where present (DI's loops fused; ``--backend numpy`` for the
reference loop).

Models (``models`` setting): ``bp``, ``fa`` (the feedback-alignment circuit with feedback
``U(-fa_range, fa_range)`` on the first feedback matrix), ``pbp``, ``ndi``, ``di``, ``sldi``
(tanh task only: it needs two layers below the output). DI, NDI and SLDI run with controller
leak ``alpha`` and feedback ``feedback`` (``neg_transpose``: ``B = -W0ᵀ`` fixed; ``optim``: small
random B optimised by SSA; ``random``); ``repair=true`` repairs loops that become unstable
(every repair counted in the metrics), otherwise an unstable loop stops that model's run and
the table says when.

Run (defaults: 1000 linear and 2000 tanh samples, a few minutes on 2 cores)::

    neurosim run scenarios/di_regression.py --out di_regression
    neurosim run scenarios/di_regression.py --set alpha=0.001 --set feedback=optim --set repair=true

The paper's length: ``--set linear_steps=2000 --set tanh_steps=20000 --set init_range=0.01``
(hours on 2 cores)
(forward weights ``U(-0.01, 0.01)`` as the authors; their loops then relax for hundreds of τ).
Differences from the authors' script: no clipping of the error norms, the teacher is
:func:`neurosim.data.teacher_student` (weights ``N(0, 1/fan_in)``), f' is applied once.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import neurosim as ns
import neurosim.scenario
from neurosim.circuits import backprop, dynamic_inversion, feedback_alignment, ndi, pseudo_backprop
from neurosim.circuits import single_loop_di

CONFIG = {
    "out": "di_regression",
    "seed": 0,
    "backend": ns.backends.default_backend(),
    "dtype": "float64",
    "tasks": ["linear", "tanh"],
    "models": ["bp", "fa", "pbp", "ndi", "di", "sldi"],
    "linear_steps": 1000,
    "tanh_steps": 2000,
    "n_test": 500,
    "eval_every": 250,
    "lr": 0.01,
    "alpha": 0.01,
    "feedback": "neg_transpose",
    "repair": False,
    "init_range": 0.0,
    "fa_range": 0.5,
    "loop_rtol": 1e-6,
    "teacher_noise": 0.0,
    "phase_log": False,
}

TASKS = {"linear": ([30, 20, 10], "linear"), "tanh": ([30, 20, 10, 10], "tanh")}
LOOP_MODELS = {"di": dynamic_inversion, "sldi": single_loop_di}


def build_model(name: str, sizes: list, activation: str, config: dict):
    """``(circuit, schedule)`` of one model; forward weights depend only on the seed and init."""
    init = {"init_range": config["init_range"] or None}
    loops = {"alpha": config["alpha"], "feedback": config["feedback"], "repair": config["repair"], **init}
    lr, seed = config["lr"], config["seed"]
    if name == "bp":
        c = backprop.build(sizes, activation, "mse", seed=seed)
        return c, backprop.schedule(c, lr=lr)
    if name == "fa":
        c = feedback_alignment.build(sizes, activation, "mse", seed=seed, feedback="uniform",
                                     feedback_scale=config["fa_range"] * np.sqrt(sizes[1]))
        return c, feedback_alignment.schedule(c, lr=lr)
    if name == "pbp":
        c = pseudo_backprop.build(sizes, activation, "mse", seed=seed, **init)
        return c, pseudo_backprop.schedule(c, lr=lr)
    if name == "ndi":
        c = ndi.build(sizes, activation, "mse", seed=seed, **loops)
        return c, ndi.schedule(c, lr=lr)
    if name in LOOP_MODELS:
        mod = LOOP_MODELS[name]
        c = mod.build(sizes, activation, "mse", seed=seed, **loops)
        settle = ns.Converged(rtol=config["loop_rtol"], atol=1e-12, window=2)
        return c, mod.schedule(c, lr=lr, loop_settle=settle)
    raise ValueError(f"model {name!r} is unknown; choose from bp, fa, pbp, ndi, di, sldi")


def initial_forward(sizes: list, activation: str, config: dict) -> dict | None:
    """With ``init_range``: the authors' ``U(-r, r)`` forward weights, drawn as the DI circuits draw them
    (BP and FA get them copied in); otherwise ``None`` (every circuit draws the same ``W`` from the seed)."""
    if not config["init_range"]:
        return None
    c = pseudo_backprop.build(sizes, activation, "mse", seed=config["seed"], init_range=config["init_range"])
    return {f"W{l}": c.projection(f"W{l}").weights for l in range(1, len(sizes))}


class LoopTiming:
    """Per-block metrics: mean relaxation steps and simulated ms per trial of the ``invert`` phases."""

    def __init__(self):
        self.start = 0

    def __call__(self, sim: ns.Simulator, epoch: int) -> dict:
        rows = sim.log.rows[self.start:]
        self.start = len(sim.log.rows)
        inv = [r for r in rows if r.phase.startswith("invert")]
        trials = {r.trial for r in rows}
        if not inv:
            return {}
        return {"relax_steps_per_trial": sum(r.steps for r in inv) / len(trials),
                "relax_ms_per_trial": sum(r.end_ms - r.start_ms for r in inv) / len(trials),
                "relax_converged_fraction": float(np.mean([r.converged for r in inv]))}


def train_model(task: str, name: str, data, config: dict, out: Path) -> dict:
    sizes, activation = TASKS[task]
    circuit, sched = build_model(name, sizes, activation, config)
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    for k, w in (initial_forward(sizes, activation, config) or {}).items():
        sim.weights[k] = sim.backend.asarray(w)
    steps = config[f"{task}_steps"]
    block = max(1, min(config["eval_every"], steps))
    timing = LoopTiming()
    curve, status = [], "ok"
    t0 = time.perf_counter()
    with ns.Trace(out / f"{task}_{name}.h5", mode="w") as trace:
        sim.begin_trace(trace, scenario="di_regression", config=dict(config, task=task, model=name))
        for start in range(0, steps, block):
            part = ns.data.Split(data.train.x[start:start + block], data.train.y[start:start + block])
            try:
                hist = sim.train(part, epochs=1, batch_size=1, test=data.test, metrics=timing,
                                 trace=trace if config["phase_log"] else None)
            except (ns.StabilityError, ns.SimulationError) as err:
                status = f"stopped after {start} samples: {str(err).split(';')[0][:90]}"
                break
            if not config["phase_log"]:  # metrics only: one row per block
                trace.log_metrics(sim.epoch - 1, {k: v[-1] for k, v in hist.metrics.items()})
                trace.end_trial()
            curve.append(hist["test_loss"][-1])
    return {"task": task, "model": name, "samples": steps if status == "ok" else None,
            "initial": curve[0] if curve else float("nan"), "final": curve[-1] if curve else float("nan"),
            "repairs": len(getattr(sched.phases[-1].after[0], "log", [])) if sched.phases[-1].after else 0,
            "relax_steps": timing_mean(out / f"{task}_{name}.h5"), "wall_s": time.perf_counter() - t0,
            "status": status}


def timing_mean(path: Path) -> float:
    """Mean relaxation steps per trial over the run, from the trace metrics (NaN without loops)."""
    with ns.load_trace(path) as tf:
        m = tf.metrics()
    if "relax_steps_per_trial" not in m:
        return float("nan")
    return float(np.mean(m["relax_steps_per_trial"][1]))


def format_table(rows: list) -> str:
    lines = ["| task | model | test loss first block | test loss final | repairs | relax steps / trial | wall s | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = "–" if np.isnan(r["relax_steps"]) else f"{r['relax_steps']:.0f}"
        lines.append(f"| {r['task']} | {r['model']} | {r['initial']:.4g} | {r['final']:.4g} | {r['repairs']} | {steps} "
                     f"| {r['wall_s']:.0f} | {r['status']} |")
    return "\n".join(lines)


def run(config: dict) -> list:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in config["tasks"]:
        if task not in TASKS:
            raise ValueError(f"task {task!r} is unknown; choose from {sorted(TASKS)}")
        sizes, activation = TASKS[task]
        data = ns.data.teacher_student(sizes, config[f"{task}_steps"], config["n_test"], activation=activation,
                                       seed=config["seed"], noise=config["teacher_noise"])
        for name in config["models"]:
            if name == "sldi" and len(sizes) < 4:
                continue
            row = train_model(task, name, data, config, out)
            rows.append(row)
            print(f"{task} {name}: test loss {row['initial']:.4g} -> {row['final']:.4g}, repairs {row['repairs']}, "
                  f"{row['wall_s']:.0f} s, {row['status']}", flush=True)
    table = format_table(rows)
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
