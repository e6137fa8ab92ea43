"""The feedback-alignment family on MNIST, side by side (the setting of Akrout et al. 2019).

784-500-10, tanh hidden layer, softmax cross-entropy, batch 128, plain SGD: learning rate 0.2
for every circuit and 0.3 for Kolen–Pollack (with decay ``kp_weight_decay`` on W and B). Trains
backprop, feedback alignment, direct feedback alignment, sign symmetry and Kolen–Pollack one
after the other from the same forward weights, writes one HDF5 trace per circuit (per-epoch
loss, accuracy and the alignment metrics of :mod:`neurosim.alignment` on a fixed probe batch),
and prints a table of test accuracy and final alignment angles (also written to
``<out>/table.md``).

Run: ``neurosim run scenarios/fa_family_mnist.py --set epochs=3`` (defaults: 2 epochs, about
a minute per circuit and epoch on 2 cores), then
``neurosim plot fa_family_mnist/feedback_alignment.h5 --what alignment -o fa_alignment.png``.
The published runs use 400 epochs (``--set epochs=400``, days on 2 cores). Variants of a circuit
are written ``name:key=value``, e.g. ``--set circuits=sign_symmetry:magnitude=random``;
``--set dale=true`` runs every circuit with excitatory/inhibitory hidden units.
Needs the MNIST extra: ``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import neurosim as ns
import neurosim.scenario
from neurosim import circuits
from neurosim.alignment import AlignmentProbe

CONFIG = {
    "out": "fa_family_mnist",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "circuits": ["backprop", "feedback_alignment", "direct_feedback_alignment", "sign_symmetry", "kolen_pollack"],
    "epochs": 2,
    "hidden": 500,
    "activation": "tanh",
    "batch_size": 128,
    "lr": 0.2,
    "kp_lr": 0.3,
    "kp_weight_decay": 1e-3,
    "dale": False,
    "dale_exc": 0.8,
    "scale": "unit",
    "limit_train": 0,
    "probe_size": 256,
    "threads": 1,
}

PUBLISHED = {"backprop": 98.50, "feedback_alignment": 97.80, "kolen_pollack": 98.45}
"""Test accuracy (%) after 400 epochs, Akrout et al.'s repository (ALGORITHMS.md §2.4)."""


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"sign_symmetry:magnitude=random"`` -> ``("sign_symmetry", {"magnitude": "random"})``."""
    name, _, rest = entry.partition(":")
    options = {}
    for item in filter(None, rest.split(":")):
        if "=" not in item:
            raise ValueError(f"circuit variant {entry!r}: options look like name:key=value")
        k, v = item.split("=", 1)
        options[k] = _number_or_text(v)
    return name, options


def _number_or_text(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_data(config: dict):
    limit = config["limit_train"] or None
    return ns.data.mnist(scale=config["scale"], limit_train=limit)


def train_circuit(entry: str, data, config: dict, trace_path: Path, *, dale: bool) -> dict:
    """Train one circuit (variant) for ``config['epochs']`` epochs with a trace; return its summary row."""
    name, options = parse_variant(entry)
    mod = circuits.get(name)
    sizes = [data.n_features, config["hidden"], data.n_outputs]
    split = ns.EISplit(config["dale_exc"]) if dale else None
    circuit = mod.build(sizes, config["activation"], "ce", seed=config["seed"], dale=split, **options)
    if name == "kolen_pollack":
        sched = mod.schedule(circuit, lr=config["kp_lr"], weight_decay=config["kp_weight_decay"])
    else:
        sched = mod.schedule(circuit, lr=config["lr"])
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    probe = AlignmentProbe.from_split(data.train, config["probe_size"])
    t0 = time.perf_counter()
    with ns.Trace(trace_path, mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test,
                            metrics=probe, trace=trace, scenario="fa_family_mnist", config=dict(config, circuit=entry))
    wall = time.perf_counter() - t0
    acc = history["test_accuracy"]
    return {
        "circuit": entry + (" +Dale" if dale else ""),
        "epochs": config["epochs"],
        "test_acc": 100 * acc[-1],
        "best_acc": 100 * max(acc),
        "angle_W1": history["angle/W1/update_vs_bp"][-1],
        "angle_B": history.metrics.get("angle/W2/B_vs_Wt", [float("nan")])[-1],
        "wall_s": wall,
        "published": PUBLISHED.get(entry) if not dale else None,
        "trace": str(trace_path),
    }


def format_table(rows: list[dict]) -> str:
    """Markdown table of the summary rows."""
    lines = ["| circuit | epochs | test acc % (final) | best % | ∠(ΔW1, BP) ° | ∠(B, Wᵀ) ° | wall s "
             "| published % (400 ep.) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = "–" if r["published"] is None else f"{r['published']:.2f}"
        lines.append(f"| {r['circuit']} | {r['epochs']} | {r['test_acc']:.2f} | {r['best_acc']:.2f} | "
                     f"{r['angle_W1']:.1f} | {r['angle_B']:.1f} | {r['wall_s']:.0f} | {pub} |")
    return "\n".join(lines)


def run(config: dict) -> list[dict]:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with threadpool_limits(limits=config["threads"]):
        data = load_data(config)
        for entry in config["circuits"]:
            tag = entry.replace(":", "_").replace("=", "-") + ("_dale" if config["dale"] else "")
            row = train_circuit(entry, data, config, out / f"{tag}.h5", dale=config["dale"])
            rows.append(row)
            print(f"{row['circuit']}: test accuracy {row['test_acc']:.2f}% after {row['epochs']} epoch(s), "
                  f"{row['wall_s']:.0f} s", flush=True)
    table = format_table(rows)
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
