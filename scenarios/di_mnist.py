"""Dynamic inversion on MNIST: BP, FA, PBP, NDI and simulated DI on 784-1000-10 (tanh, softmax).

The classification experiment of Podlaski & Machens (2020, Fig. 4a; ALGORITHMS.md §4.4), with
simulated DI added: the authors ran only the closed form (NDI) on MNIST. Every model starts from
the same forward weights, sees the same batches, and writes its own trace
``<out>/<model>.h5`` with per-epoch train/test loss and accuracy and, for the loop circuits,
the loop's spectral abscissa (1/ms), the SSA repairs of the epoch (``repairs``), and for DI the
relaxation per trial: integration steps, simulated ms and the fraction that converged
(``relax_*``). With ``batch_size`` > 1 one relaxation serves the whole batch and runs until its
slowest sample has converged; ``batch_size=1`` gives the time per sample. The summary table
(test error %, relaxation, repairs, wall time) goes to ``<out>/table.md``.

Models (``models``): ``bp``, ``fa`` (feedback ``U(-fa_range, fa_range)``, the authors' 0.5),
``pbp``, ``ndi``, ``di``; a variant is written ``name:key=value`` (e.g. ``ndi:alpha=0.01``, the
authors' NDI-2; ``di:loop_rtol=1e-8``; ``di:repair=true``). Inputs are z-scored with the global
pixel mean and standard deviation (as the authors); weight decay is decoupled,
``decay_per_sample`` per training sample (their 1e-6 per online step).

Run (defaults: 6 000 training and 2 000 test images, 1 epoch, batch 20, learning rate 0.02 on the
batch mean, i.e. 1e-3 per sample; about a minute per model on 2 cores with the numba backend)::

    neurosim run scenarios/di_mnist.py --out di_mnist

The authors' protocol (online, 15 epochs, ``U(-0.01, 0.01)`` weights, all of MNIST; about an
hour per epoch and model on 2 cores, most of it the engine's per-trial cost at batch 1)::

    neurosim run scenarios/di_mnist.py --set limit_train=60000 --set limit_test=10000 --set epochs=15 \\
        --set batch_size=1 --set lr=0.001 --set init_range=0.01 --set models=bp,fa,pbp,ndi,ndi:alpha=0.01,di

Needs the MNIST extra: ``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import neurosim as ns
import neurosim.scenario
from neurosim.circuits import backprop, dynamic_inversion, feedback_alignment, ndi, pseudo_backprop

CONFIG = {
    "out": "di_mnist",
    "seed": 0,
    "backend": ns.backends.default_backend(),
    "dtype": "float64",
    "models": ["bp", "fa", "pbp", "ndi", "di"],
    "hidden": 1000,
    "epochs": 1,
    "batch_size": 20,
    "lr": 0.02,
    "decay_per_sample": 1e-6,
    "limit_train": 6000,
    "limit_test": 2000,
    "init_range": 0.0,
    "fa_range": 0.5,
    "alpha": 0.0,
    "loop_rtol": 1e-6,
}


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"ndi:alpha=0.01"`` -> ``("ndi", {"alpha": 0.01})``."""
    name, _, rest = entry.partition(":")
    options = {}
    for item in filter(None, rest.split(":")):
        if "=" not in item:
            raise ValueError(f"model variant {entry!r}: options look like name:key=value")
        k, v = item.split("=", 1)
        options[k] = {"true": True, "false": False}.get(v.lower(), _number(v))
    return name, options


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_data(config: dict) -> ns.data.Dataset:
    """MNIST in [0, 1], then z-scored with the training split's global mean and standard deviation."""
    d = ns.data.mnist(scale="unit", limit_train=config["limit_train"] or None, limit_test=config["limit_test"] or None)
    mu, sd = float(d.train.x.mean()), float(d.train.x.std())
    z = lambda s: ns.data.Split((s.x - mu) / sd, s.y, s.labels)  # noqa: E731
    return ns.data.Dataset("mnist_z", z(d.train), z(d.test), d.n_classes)


def build_model(entry: str, config: dict):
    """``(circuit, schedule)`` of one model variant."""
    name, opts = parse_variant(entry)
    sizes = [784, config["hidden"], 10]
    seed = config["seed"]
    sgd = {"lr": config["lr"], "weight_decay": config["decay_per_sample"] * config["batch_size"] / config["lr"]}
    init = {"init_range": config["init_range"] or None}
    loops = {"alpha": opts.pop("alpha", config["alpha"]), **init}
    if name == "bp":
        c = backprop.build(sizes, "tanh", "ce", seed=seed)
        return c, backprop.schedule(c, **sgd)
    if name == "fa":
        scale = opts.pop("fa_range", config["fa_range"]) * np.sqrt(config["hidden"])
        c = feedback_alignment.build(sizes, "tanh", "ce", seed=seed, feedback="uniform", feedback_scale=scale)
        return c, feedback_alignment.schedule(c, **sgd)
    if name == "pbp":
        c = pseudo_backprop.build(sizes, "tanh", "ce", seed=seed, **init)
        return c, pseudo_backprop.schedule(c, **sgd)
    if name == "ndi":
        c = ndi.build(sizes, "tanh", "ce", seed=seed, **loops, **opts)
        return c, ndi.schedule(c, **sgd)
    if name == "di":
        rtol = opts.pop("loop_rtol", config["loop_rtol"])
        sched_opts = {k: opts.pop(k) for k in list(opts) if k in ("loop_dt_ms", "loop_integrator", "loop_max_ms")}
        c = dynamic_inversion.build(sizes, "tanh", "ce", seed=seed, **loops, **opts)
        return c, dynamic_inversion.schedule(c, loop_settle=ns.Converged(rtol=rtol, atol=1e-12, window=2), **sgd,
                                             **sched_opts)
    raise ValueError(f"model {name!r} is unknown; choose from bp, fa, pbp, ndi, di")


class LoopTiming:
    """Per-epoch metrics of the ``invert`` phases: steps, simulated ms and converged fraction per trial."""

    def __init__(self):
        self.start = 0

    def __call__(self, sim: ns.Simulator, epoch: int) -> dict:
        rows = sim.log.rows[self.start:]
        self.start = len(sim.log.rows)
        inv = [r for r in rows if r.phase.startswith("invert")]
        if not inv:
            return {}
        return {"relax_steps_per_trial": float(np.mean([r.steps for r in inv])),
                "relax_ms_per_trial": float(np.mean([r.end_ms - r.start_ms for r in inv])),
                "relax_converged_fraction": float(np.mean([r.converged for r in inv])),
                "relax_wall_s": float(sum(r.wall_s for r in inv))}


def train_model(entry: str, data, config: dict, out: Path, reference: dict | None) -> dict:
    circuit, sched = build_model(entry, config)
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    for k, w in (reference or {}).items():
        sim.weights[k] = sim.backend.asarray(w)
    timing = LoopTiming()
    tag = entry.replace(":", "_").replace("=", "-")
    t0 = time.perf_counter()
    status = "ok"
    with ns.Trace(out / f"{tag}.h5", mode="w") as trace:
        sim.begin_trace(trace, scenario="di_mnist", config=dict(config, model=entry))
        for _ in range(config["epochs"]):
            try:
                hist = sim.train(data.train, epochs=1, batch_size=config["batch_size"], test=data.test, metrics=timing)
            except (ns.StabilityError, ns.SimulationError) as err:
                status = f"stopped in epoch {sim.epoch}: {str(err)[:100]}"
                break
            values = {k: v[-1] for k, v in hist.metrics.items()}
            trace.log_metrics(sim.epoch - 1, values)
            trace.end_trial()
            print(f"  {entry} epoch {sim.epoch - 1}: test error {100 * (1 - values['test_accuracy']):.2f}%"
                  + (f", relaxation {values['relax_steps_per_trial']:.0f} steps / "
                     f"{values['relax_ms_per_trial']:.0f} ms "
                     f"per trial, repairs {values.get('repairs', 0):.0f}" if "relax_steps_per_trial" in values else ""),
                  flush=True)
    wall = time.perf_counter() - t0
    with ns.load_trace(out / f"{tag}.h5") as tf:
        m = {k: v[1] for k, v in tf.metrics().items()}
    last = lambda k: float(m[k][-1]) if k in m and len(m[k]) else float("nan")  # noqa: E731
    return {"model": entry, "test_error": 100 * (1 - last("test_accuracy")),
            "relax_steps": last("relax_steps_per_trial"), "relax_ms": last("relax_ms_per_trial"),
            "repairs": float(np.sum(m.get("repairs", [0]))), "abscissa": last("abscissa_max_per_ms/loop2"),
            "wall_s": wall, "status": status}


def initial_forward(config: dict) -> dict | None:
    """With ``init_range``: the DI circuits' ``U(-r, r)`` draw, copied into BP and FA; else ``None``."""
    if not config["init_range"]:
        return None
    c = pseudo_backprop.build([784, config["hidden"], 10], "tanh", "ce", seed=config["seed"],
                              init_range=config["init_range"])
    return {"W1": c.projection("W1").weights, "W2": c.projection("W2").weights}


def format_table(rows: list, config: dict) -> str:
    head = (f"MNIST 784-{config['hidden']}-10, {config['limit_train'] or 60000} train / "
            f"{config['limit_test'] or 10000} test images, {config['epochs']} epoch(s), batch {config['batch_size']}, "
            f"lr {config['lr']}, backend {config['backend']}")
    lines = [head, "", "| model | test error % | relax steps / trial | relax ms / trial | repairs | "
             "max abscissa (1/ms) | wall s | status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda v, spec: "–" if np.isnan(v) else format(v, spec)  # noqa: E731
        lines.append(f"| {r['model']} | {r['test_error']:.2f} | {f(r['relax_steps'], '.0f')} "
                     f"| {f(r['relax_ms'], '.0f')} | {r['repairs']:.0f} | {f(r['abscissa'], '.3g')} "
                     f"| {r['wall_s']:.0f} | {r['status']} |")
    return "\n".join(lines)


def run(config: dict) -> list:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config)
    reference = initial_forward(config)
    rows = []
    for entry in config["models"]:
        rows.append(train_model(entry, data, config, out, reference))
        print(f"{entry}: test error {rows[-1]['test_error']:.2f}%, {rows[-1]['wall_s']:.0f} s", flush=True)
    table = format_table(rows, config)
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
