"""Predictive coding on MNIST: backprop, IL and Z-IL trained by the same script, side by side.

Each circuit (``circuits`` setting: any of ``bp``, ``il``, ``zil``, ``fazil``) builds the same
784-hidden-10 network from the same seed and trains on the same batches. Per circuit and epoch
the scenario prints the test accuracy, the mean number of integration steps a training sample
spends in relaxations (split into the feedforward settle and the learning relaxation), and the
wall time of the training epoch (all of it, and the part spent in phases, without tracing); every
circuit writes its own trace ``<out stem>_<circuit>.h5`` with the phase log, the residual of every
relaxation step, a few state traces and per-epoch metrics. Z-IL and backprop give the same numbers
up to round-off (A1); IL is approximate and spends far more steps. IL weights its output error by
``output_precision`` (π_L, default 0.1) and learns at ``lr / π_L``: its updates approach backprop's
times π_L as π_L → 0 (A2); set ``output_precision=1`` for plain IL.

Run (defaults: 10 000 training and 2 000 test images, 2 epochs, a few minutes on 2 cores)::

    neurosim run scenarios/pc_mnist.py --out pc_mnist.h5
    neurosim plot pc_mnist_il.h5 --what convergence -o il_convergence.png

Full length (all 60 000 / 10 000 images, 10 epochs; about 1.5 h on 2 cores with the numpy backend, mostly IL)::

    neurosim run scenarios/pc_mnist.py --set limit_train=60000 --set limit_test=10000 --set epochs=10

Needs the MNIST extra: ``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import neurosim as ns
from neurosim.circuits import backprop, fazil, inference_learning, zil

CONFIG = {
    "out": "pc_mnist.h5",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "circuits": "bp,il,zil",
    "hidden": "256",
    "activation": "tanh",
    "loss": "mse",
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "limit_train": 10000,
    "limit_test": 2000,
    "tau_ms": 10.0,
    "il_gamma": 0.2,
    "il_rtol": 1e-4,
    "il_max_steps": 400,
    "output_precision": 0.1,
}

MODULES = {"bp": backprop, "il": inference_learning, "zil": zil, "fazil": fazil}


def _schedule(name: str, circuit, config: dict):
    common = {"lr": config["lr"], "momentum": config["momentum"]}
    if name == "il":
        # IL's updates scale with the output precision (A2: ΔW ≈ π_L ΔW_BP): compensate in the rate
        settle = ns.Converged(rtol=config["il_rtol"], atol=1e-9)
        return inference_learning.schedule(circuit, gamma=config["il_gamma"], settle=settle,
                                           max_steps=config["il_max_steps"],
                                           lr=config["lr"] / config["output_precision"], momentum=config["momentum"])
    if name == "bp":
        return backprop.schedule(circuit, settle=ns.Converged(rtol=1e-9, atol=1e-12), **common)
    return MODULES[name].schedule(circuit, **common)


def _epoch_phases(sim: ns.Simulator, first_row: int) -> tuple[float, float, float]:
    """From the phase log since ``first_row``: mean integration steps per training sample in the
    feedforward settle and in the learning relaxations, and the wall time spent in phases (s).

    A batch's relaxation counts once for each of its samples (they relax together).
    """
    per_trial: dict[int, list] = {}
    wall = 0.0
    for r in sim.log.rows[first_row:]:
        wall += r.wall_s
        acc = per_trial.setdefault(r.trial, [0, 0])
        acc[0 if r.phase == "forward" else 1] += r.steps
    steps = np.array(list(per_trial.values()) or [[0, 0]], dtype=float)
    return float(steps[:, 0].mean()), float(steps[:, 1].mean()), wall


def _train_one(name: str, data, config: dict, out: Path) -> dict:
    hidden = [int(h) for h in str(config["hidden"]).split(",") if h.strip()]
    sizes = [data.n_features, *hidden, data.n_classes]
    module = MODULES[name]
    kwargs = {"tau_ms": config["tau_ms"]}
    if name == "il":
        kwargs["output_precision"] = config["output_precision"]
    circuit = module.build(sizes, config["activation"], config["loss"], seed=config["seed"], **kwargs)
    schedule = _schedule(name, circuit, config)
    print(f"== {name}: {'-'.join(map(str, sizes))} {config['activation']}, loss {config['loss']}")
    print(schedule.summary())
    sim = ns.Simulator(circuit, schedule, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    probe = "x1"
    error = "e1" if name == "bp" else "eps1"
    monitors = [ns.ConvergenceMonitor(),
                ns.StateMonitor(probe, "u", units=range(4), batch=[0]),
                ns.StateMonitor(error, "u", units=range(4), batch=[0])]
    rows = []
    with ns.Trace(out, mode="w") as trace:
        for epoch in range(config["epochs"]):
            first = len(sim.log)
            t0 = time.perf_counter()
            hist = sim.train(data.train, epochs=1, batch_size=config["batch_size"], monitors=monitors, trace=trace,
                             scenario="pc_mnist", config={**config, "circuit": name})
            wall = time.perf_counter() - t0
            ff, learn, phase_wall = _epoch_phases(sim, first)
            ev = sim.evaluate(data.test)
            row = {"epoch": epoch, "train_loss": hist["train_loss"][0], "test_accuracy": ev["accuracy"],
                   "test_loss": ev["loss"], "wall_s": wall, "phase_wall_s": phase_wall, "forward_steps": ff,
                   "learning_steps": learn}
            trace.log_metrics(epoch, {k: v for k, v in row.items() if k not in ("epoch", "train_loss")})
            trace.end_trial()
            rows.append(row)
            print(f"{name:>5} epoch {epoch}: train loss {row['train_loss']:.4f}  test acc {ev['accuracy']:.4f}  "
                  f"steps/sample {ff:.1f} + {learn:.1f}  wall {wall:.1f} s ({phase_wall:.1f} s in phases)")
    print(sim.log.summary())
    print(f"trace: {out}\n")
    return {"rows": rows, "weights": sim.host_weights()}


def run(config: dict) -> dict:
    names = [n.strip() for n in str(config["circuits"]).split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        raise ValueError(f"circuits={config['circuits']!r}: unknown {unknown}; choose from {sorted(MODULES)}")
    data = ns.data.mnist(limit_train=config["limit_train"], limit_test=config["limit_test"])
    print(f"MNIST: {len(data.train)} training and {len(data.test)} test images; backend {config['backend']}, "
          f"{config['dtype']}\n")
    stem = Path(config["out"])
    results = {n: _train_one(n, data, config, stem.with_name(f"{stem.stem}_{n}{stem.suffix or '.h5'}"))
               for n in names}
    print(f"{'circuit':>8} {'test acc':>9} {'steps/sample':>13} {'(ff + learn)':>14} {'wall s/epoch':>13}"
          f" {'in phases':>10}")
    for n, r in results.items():
        last = r["rows"][-1]
        ff = np.mean([row["forward_steps"] for row in r["rows"]])
        learn = np.mean([row["learning_steps"] for row in r["rows"]])
        wall = np.mean([row["wall_s"] for row in r["rows"]])
        phase_wall = np.mean([row["phase_wall_s"] for row in r["rows"]])
        print(f"{n:>8} {last['test_accuracy']:>9.4f} {ff + learn:>13.1f} {ff:>6.1f} + {learn:<6.1f} {wall:>13.2f}"
              f" {phase_wall:>10.2f}")
    if "bp" in results and "zil" in results:
        diff = max(float(np.max(np.abs(results["zil"]["weights"][k] - results["bp"]["weights"][k])))
                   for k in results["bp"]["weights"] if k.startswith("W"))
        print(f"\nmax |W_zil - W_bp| after training: {diff:.3e} (A1: equal up to round-off)")
    return {n: r["rows"] for n, r in results.items()}


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
