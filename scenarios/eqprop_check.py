"""``neurosim check eqprop`` against its own reference: the gradient at the free fixed point.

``neurosim check`` compares every circuit with feedforward backprop; Equilibrium Propagation
estimates a different gradient, that of the loss at the free fixed point of its energy (the
layers are coupled both ways there, so it is not the feedforward pass). This scenario runs the
same check trial and compares the updates with :func:`circuits.eqprop.reference` (implicit
differentiation), then measures the estimator's error at several ``β`` for symmetric and
one-sided nudging and fits its order (2 and 1). Prints JSON and writes it to ``out``.

Run (about a second)::

    neurosim run scenarios/eqprop_check.py --out eqprop_check.json
    neurosim run scenarios/eqprop_check.py --set sizes=20,30,10 --set beta=0.01 --set nudging=one_sided
"""
from __future__ import annotations

import json
from pathlib import Path

import neurosim as ns
from neurosim.check import run_check
from neurosim.circuits import eqprop

CONFIG = {
    "out": "eqprop_check.json",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "sizes": "12,16,6",
    "activation": "tanh",
    "batch": 16,
    "beta": eqprop.DEFAULT_BETA,
    "nudging": "symmetric",
    "scaling_betas": "0.04,0.02,0.01,0.005",
}


def run(config: dict) -> dict:
    sizes = [int(v) for v in str(config["sizes"]).split(",")]
    common = dict(sizes=sizes, activation=config["activation"], loss="mse", batch=int(config["batch"]),
                  seed=int(config["seed"]), dtype=config["dtype"], backend=config["backend"])
    report = run_check(eqprop.NAME, options={"beta": float(config["beta"]), "nudging": config["nudging"]}, **common)
    betas = [float(b) for b in str(config["scaling_betas"]).split(",")]
    out = {"circuit": eqprop.NAME, "settings": report.settings, **eqprop.compare_with_reference(report),
           "max_relative_error_vs_feedforward_backprop": report.max_relative_error,
           "beta_scaling": [eqprop.beta_scaling(betas, nudging=n, **common) for n in eqprop.NUDGINGS]}
    text = json.dumps(out, indent=1, ensure_ascii=False)
    print(text)
    Path(config["out"]).write_text(text + "\n")
    return out


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
