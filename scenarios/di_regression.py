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
from neurosim.analysis import angle_deg
from neurosim.circuits import backprop, dynamic_inversion, feedback_alignment, ndi, pseudo_backprop, single_loop_di

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


class LoopMetrics:
    """Per-block metrics of the loop circuits: relaxation per trial and how far each feedback ``B``
    is from the negative transpose of the forward product it inverts (the pseudo-inverse choice)."""

    def __init__(self, circuit):
        self.start = 0
        self.feedback = {}
        for p in circuit.projections:
            if p.name.startswith("B") and p.pathway == "feedback" and circuit.name in ("di", "sldi", "ndi"):
                top, _, bottom = p.name[1:].partition("_")
                bottom = int(bottom) if bottom else int(top) - 1
                self.feedback[p.name] = list(range(bottom + 1, int(top) + 1))

    def __call__(self, sim: ns.Simulator, epoch: int) -> dict:
        rows = sim.log.rows[self.start:]
        self.start = len(sim.log.rows)
        out = {}
        for name, layers in self.feedback.items():
            prod = None
            for j in layers:
                w = sim.effective_weights(f"W{j}")
                prod = w if prod is None else w @ prod
            out[f"angle/{name}_vs_neg_forward_T"] = angle_deg(sim.effective_weights(name), -prod.T)
        inv = [r for r in rows if r.phase.startswith("invert")]
        if inv:
            trials = {r.trial for r in rows}
            out.update({"relax_steps_per_trial": sum(r.steps for r in inv) / len(trials),
                        "relax_ms_per_trial": sum(r.end_ms - r.start_ms for r in inv) / len(trials),
                        "relax_converged_fraction": float(np.mean([r.converged for r in inv]))})
        return out


def train_model(task: str, name: str, data, config: dict, out: Path) -> dict:
    sizes, activation = TASKS[task]
    try:
        circuit, sched = build_model(name, sizes, activation, config)
    except (ns.CircuitError, ns.StabilityError) as err:
        nan = float("nan")
        return {"task": task, "model": name, "samples": 0, "initial": nan, "final": nan, "repairs": 0,
                "relax_steps": nan, "repair_change": nan, "abscissa_max": nan, "angle_B": nan, "wall_s": 0.0,
                "status": f"refused at build: {str(err).split('. Fixes')[0][:110]}"}
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    for k, w in (initial_forward(sizes, activation, config) or {}).items():
        sim.weights[k] = sim.backend.asarray(w)
    steps = config[f"{task}_steps"]
    block = max(1, min(config["eval_every"], steps))
    timing = LoopMetrics(circuit)
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
                status = f"stopped in samples {start}–{start + block}: {str(err).split(';')[0][:90]}"
                break
            if not config["phase_log"]:  # metrics only: one row per block
                trace.log_metrics(sim.epoch - 1, {k: v[-1] for k, v in hist.metrics.items()})
                trace.end_trial()
            curve.append(hist["test_loss"][-1])
    return {"task": task, "model": name, "samples": steps if status == "ok" else None,
            "initial": curve[0] if curve else float("nan"), "final": curve[-1] if curve else float("nan"),
            "repairs": len(getattr(sched.phases[-1].after[0], "log", [])) if sched.phases[-1].after else 0,
            **trace_summary(out / f"{task}_{name}.h5"), "wall_s": time.perf_counter() - t0, "status": status}


def trace_summary(path: Path) -> dict:
    """From the trace metrics: mean relaxation steps per trial, summed relative change of B by repairs,
    the largest spectral abscissa (1/ms) over the run, and the final angle of B to -Wᵀ (NaN where absent)."""
    with ns.load_trace(path) as tf:
        m = {k: v[1] for k, v in tf.metrics().items()}
    nan = float("nan")
    angles = [v[-1] for k, v in m.items() if k.startswith("angle/") and len(v)]
    absc = [v.max() for k, v in m.items() if k.startswith("abscissa_max_per_ms/") and len(v)]
    return {"relax_steps": float(np.mean(m["relax_steps_per_trial"])) if "relax_steps_per_trial" in m else nan,
            "repair_change": float(np.sum(m["repair_change"])) if "repair_change" in m else nan,
            "abscissa_max": max(absc) if absc else nan, "angle_B": max(angles) if angles else nan}


def format_table(rows: list) -> str:
    lines = ["| task | model | test loss after first block | final test loss | relax steps / trial | repairs "
             "| Σ repair ‖ΔB‖/‖B‖ | max abscissa (1/ms) | final ∠(B, -Wᵀ) ° | wall s | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v, spec: "–" if np.isnan(v) else format(v, spec)  # noqa: E731
    for r in rows:
        lines.append(f"| {r['task']} | {r['model']} | {r['initial']:.4g} | {r['final']:.4g} "
                     f"| {f(r['relax_steps'], '.0f')} | {r['repairs']} | {f(r['repair_change'], '.3g')} "
                     f"| {f(r['abscissa_max'], '.3g')} | {f(r['angle_B'], '.1f')} | {r['wall_s']:.0f} "
                     f"| {r['status']} |")
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
