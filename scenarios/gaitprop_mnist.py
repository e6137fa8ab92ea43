"""GAIT-prop vs backprop vs target propagation on MNIST, in the authors' square network.

Ahmad, van Gerven & Ambrogioni (2020), ALGORITHMS.md §5: 784 inputs, ``hidden_layers`` (4) hidden
layers of 784 leaky-ReLU (slope 0.1) units and a 784-unit linear output of which the first 10
units are read out (the others have their own rate as target), MSE loss, batch 60, orthogonal
initial weights shared by all methods. GAIT-prop (γ = ``gamma``) and exact-inverse TP relax their
targets in time through inverses recomputed from the current weights; both carry the authors'
off-diagonal orthogonality regulariser (``gait_ortho``, ``tp_ortho``). Backprop runs the
equivalent 784-...-784-10 network (the unread output rows never learn under backprop).

Per epoch the trace of each method records loss and accuracy, the orthogonality of every square
``W_l`` (``ortho/W{l}/defect`` = ||WᵀW - I||_F / sqrt(n), ``ortho/W{l}/offdiag`` =
||offdiag(WᵀW)|| / ||diag(WᵀW)||, ``ortho/W{l}/inverse_vs_transpose`` = ||W⁻¹ - Wᵀ|| / ||W||,
which GAIT-prop's exactness needs to vanish) and the angle between the method's update (without
the regulariser) and backprop's on a fixed probe batch (``angle/W{l}/update_vs_bp``); for GAIT-prop
also the fraction of hidden units whose nudged rate crossed the kink of the leaky ReLU on that
batch (``kink_crossings/x{l}``), the other thing that separates it from backprop. The targets of
layer 1 (8 units, sample 0) are recorded as they form, with the residual of every target step.
Prints a table of test accuracy beside the paper's claim and writes it to ``<out>/table.md``.

Deviation from the authors: plain SGD with momentum instead of their Adam-like optimiser (no
bias correction), so the learning rates and TP's regulariser differ (λ = 1000 is unstable under
SGD at any useful rate: gradient descent on the penalty needs lr·λ below about 0.25); see
docs/results/gaitprop_mnist.md.

Run: ``neurosim run scenarios/gaitprop_mnist.py`` (defaults: 1200 training images, 2 epochs,
2.5 CPU-minutes, 7 minutes wall on a shared 2-core machine, dominated by the 784x784 inverses and
the regulariser of GAIT-prop and TP), then
``neurosim plot gaitprop_mnist/gaitprop.h5 --what alignment -o gait_angles.png``.
The authors' length is ``--set limit_train=60000 --set epochs=100`` (days on 2 cores).
Needs the MNIST extra: ``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import neurosim as ns
import neurosim.scenario
from neurosim.analysis import angle_deg, backprop_reference, forward
from neurosim.circuits import backprop, gaitprop, target_prop
from neurosim.regularisers import get_penalty, inverse_transpose_gap, offdiagonal_ratio, orthonormality_defect

CONFIG = {
    "out": "gaitprop_mnist",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "methods": ["backprop", "gaitprop", "tp"],
    "hidden_layers": 4,
    "epochs": 2,
    "limit_train": 1200,
    "limit_test": 2000,
    "batch_size": 60,
    "lr": 0.05,
    "tp_lr": 0.001,
    "momentum": 0.9,
    "gamma": 1e-3,
    "gait_ortho": 0.1,
    "tp_ortho": 100.0,
    "ortho_penalty": "offdiagonal",
    "probe_size": 60,
    "threads": 1,
}

PAPER = {"backprop": "≈98 [R]", "gaitprop": "≈98 [R], \"near-identical\" to BP [abs]", "tp": "worse than BP [abs]"}
"""The paper's claims for MNIST, 4 hidden layers, 100 epochs (ALGORITHMS.md §5.4; [R] = recalled)."""

READOUT = 10


def build(method: str, width: int, config: dict):
    """Circuit, schedule and the regulariser penalty (or None) of one method."""
    L = config["hidden_layers"] + 1
    if method == "backprop":
        circuit = backprop.build([width] * L + [READOUT], "leaky_relu", "mse", seed=config["seed"])
        return circuit, backprop.schedule(circuit, lr=config["lr"], momentum=config["momentum"]), None
    mod, lr, ortho = ((gaitprop, config["lr"], config["gait_ortho"]) if method == "gaitprop"
                      else (target_prop, config["tp_lr"], config["tp_ortho"]))
    extra = {"gamma": config["gamma"]} if method == "gaitprop" else {}
    circuit = mod.build([width] * (L + 1), "leaky_relu", "mse", seed=config["seed"], readout_units=READOUT, **extra)
    sched = mod.schedule(circuit, lr=lr, momentum=config["momentum"], ortho=ortho,
                         ortho_penalty=config["ortho_penalty"])
    penalty = get_penalty(config["ortho_penalty"], ortho) if ortho > 0 else None
    return circuit, sched, penalty


def shared_initial_weights(width: int, config: dict) -> dict:
    """The orthogonal weights every method starts from (backprop keeps the read-out rows of W_L)."""
    square = gaitprop.build([width] * (config["hidden_layers"] + 2), "leaky_relu", seed=config["seed"],
                            readout_units=READOUT)
    return {p.name: p.weights for p in square.projections if p.plastic}


class Probe:
    """Per-epoch metrics: orthogonality of square weights and the update's angle to backprop's.

    Parameters
    ----------
    x, y : arrays (B, 784), (B, 10)
        The probe batch.
    penalty : Penalty or None
        The method's regulariser, removed from its update before the comparison.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, penalty):
        self.x, self.y, self.penalty = x, y, penalty

    def reference(self, weights: list, biases: list) -> list:
        """Backprop's ΔW; unread output units get their own output as target (zero error)."""
        a_out = forward(weights, biases, self.x, "leaky_relu").a[-1]
        y = a_out.copy()
        y[:, :READOUT] = self.y
        return backprop_reference(weights, biases, self.x, y, "leaky_relu", "mse")[0]

    def __call__(self, sim: ns.Simulator, epoch: int) -> dict:
        L = len(sim.circuit.meta["sizes"]) - 1
        weights = [sim.host_weights()[f"W{l}"] for l in range(1, L + 1)]
        biases = [sim.host_biases()[f"x{l}"] for l in range(1, L + 1)]
        result = sim.run_trial({"x": self.x, "y": self.y}, apply_updates=False)
        updates, state = result.updates, result.state
        ref = self.reference(weights, biases)
        out = {}
        for l in range(2, L):  # GAIT-prop's nudged rates z_l (n{l}) on the other side of the kink from x_l
            if f"n{l}" in state:
                out[f"kink_crossings/x{l}"] = float(np.mean(np.sign(state[f"n{l}"]) != np.sign(state[f"x{l}"])))
        for l, w in enumerate(weights, start=1):
            dw = updates[f"W{l}"]
            if self.penalty is not None:
                dw = dw + len(self.x) * self.penalty.gradient(w)
            out[f"angle/W{l}/update_vs_bp"] = angle_deg(dw, ref[l - 1])
            if w.shape[0] == w.shape[1]:
                out[f"ortho/W{l}/defect"] = orthonormality_defect(w)
                out[f"ortho/W{l}/offdiag"] = offdiagonal_ratio(w)
                out[f"ortho/W{l}/inverse_vs_transpose"] = inverse_transpose_gap(w)
        return out


def train_method(method: str, data, init: dict, config: dict, trace_path: Path) -> dict:
    """Train one method with a trace; return its summary row."""
    width = data.n_features
    circuit, sched, penalty = build(method, width, config)
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    for name, w in init.items():
        sim.weights[name] = sim.backend.asarray(w[:READOUT] if sim.weights[name].shape[0] == READOUT else w)
    n = config["probe_size"]
    probe = Probe(np.array(data.train.x[:n]), np.array(data.train.y[:n]), penalty)
    monitors = [] if method == "backprop" else [
        ns.StateMonitor("t1", "u", units=range(8), batch=[0]), ns.ConvergenceMonitor(phases=["targets"])]
    start = probe(sim, -1)
    t0 = time.perf_counter()
    with ns.Trace(trace_path, mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test,
                            metrics=probe, monitors=monitors, trace=trace, scenario="gaitprop_mnist",
                            config=dict(config, method=method))
    wall = time.perf_counter() - t0
    defect = [k for k in history.metrics if k.endswith("/defect")]
    return {
        "method": method,
        "epochs": config["epochs"],
        "test_acc": 100 * history["test_accuracy"][-1],
        "train_acc": 100 * history["train_accuracy"][-1],
        "angle_W1": history["angle/W1/update_vs_bp"][-1],
        "angle_W1_start": start["angle/W1/update_vs_bp"],
        "defect": max(history[k][-1] for k in defect),
        "wall_s": wall,
        "trace": str(trace_path),
    }


def format_table(rows: list[dict]) -> str:
    """Markdown table of the summary rows beside the paper's claims."""
    lines = ["| method | epochs | test acc % | train acc % | ∠(ΔW1, BP) ° start → end | max ‖WᵀW−I‖/√n | wall s "
             "| paper (MNIST, 100 epochs) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['epochs']} | {r['test_acc']:.2f} | {r['train_acc']:.2f} | "
                     f"{r['angle_W1_start']:.2f} → {r['angle_W1']:.2f} | {r['defect']:.3f} | {r['wall_s']:.0f} | "
                     f"{PAPER[r['method']]} |")
    return "\n".join(lines)


def run(config: dict) -> list[dict]:
    unknown = set(config["methods"]) - set(PAPER)
    if unknown:
        raise ValueError(f"methods={config['methods']!r}: unknown {sorted(unknown)}; choose from {sorted(PAPER)}")
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with threadpool_limits(limits=config["threads"]):
        data = ns.data.mnist(limit_train=config["limit_train"] or None, limit_test=config["limit_test"] or None)
        init = shared_initial_weights(data.n_features, config)
        for method in config["methods"]:
            row = train_method(method, data, init, config, out / f"{method}.h5")
            rows.append(row)
            print(f"{method}: test accuracy {row['test_acc']:.2f}% after {row['epochs']} epoch(s), "
                  f"angle of ΔW1 to backprop {row['angle_W1']:.2f}°, {row['wall_s']:.0f} s", flush=True)
    table = format_table(rows)
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
