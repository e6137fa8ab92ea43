"""Dale's law that learns: each circuit with free-signed weights beside its Dale's-ANN (E/I) form.

Every learning circuit is trained twice from the same seed, with the same hidden non-linearity
(``relu``: non-negative rates, which Dale's law needs), loss (softmax cross-entropy), batches and
learning rate: once as the ordinary circuit (free signs), once as its E/I form (``*_ei``:
excitatory principal cells plus ~10 % feedforward inhibitory interneurons per layer, every weight
non-negative and clamped at 0, DANN initialisation and corrected updates, errors in push–pull
ON/OFF pairs; :mod:`circuits._ei`). Inputs are unit-scaled pixels in [0, 1] (non-negative rates of
excitatory input channels); the interneurons subtract their mean.

Writes one HDF5 trace per run and ``<out>/table.md``:
``| circuit | free | Dale | difference | wall s |`` (test accuracy in %, wall time of both runs).

Run: ``neurosim run scenarios/dale_comparison.py --set data=digits --set epochs=10`` (about a minute
on 2 cores), ``--set data=mnist --set epochs=1`` (784-500-10). ``--set circuits=backprop,il`` picks
rows (IL relaxes for up to 2000 steps per batch: by far the slowest row).
"""
from __future__ import annotations

import time
from pathlib import Path

from threadpoolctl import threadpool_limits

import neurosim as ns
import neurosim.scenario
from neurosim import circuits

CONFIG = {
    "out": "dale_comparison",
    "data": "digits",
    "epochs": 10,
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "circuits": ["backprop", "feedback_alignment", "direct_feedback_alignment", "sign_symmetry", "kolen_pollack",
                 "il"],
    "hidden": 0,
    "batch_size": 0,
    "lr": 0.1,
    "kp_weight_decay": 1e-3,
    "il_lr": 0.1,
    "limit_train": 0,
    "threads": 1,
}
"""``hidden`` and ``batch_size`` 0: 100 and 32 on digits, 500 and 128 on MNIST."""

EI_FORM = {
    "backprop": "backprop_ei",
    "feedback_alignment": "feedback_alignment_ei",
    "direct_feedback_alignment": "direct_feedback_alignment_ei",
    "sign_symmetry": "sign_symmetry_ei",
    "kolen_pollack": "kolen_pollack_ei",
    "il": "il_ei",
}
"""The E/I (Dale) circuit of each free one (``None``: none built; its Dale column reads "–")."""

DATA = ("digits", "mnist")


def load_data(config: dict):
    """The data set named by ``config['data']`` with unit-scaled (non-negative) pixels."""
    if config["data"] not in DATA:
        raise ValueError(f"data={config['data']!r} is unknown; choose one of {DATA} (--set data=digits)")
    if config["data"] == "digits":
        return ns.data.digits(seed=config["seed"], scale="unit")
    return ns.data.mnist(scale="unit", limit_train=config["limit_train"] or None)


def _defaults(config: dict) -> tuple[int, int]:
    mnist = config["data"] == "mnist"
    hidden = int(config["hidden"]) or (500 if mnist else 100)
    batch = int(config["batch_size"]) or (128 if mnist else 32)
    return hidden, batch


def train_one(name: str, data, config: dict, trace_path: Path) -> dict:
    """Train circuit ``name`` for ``config['epochs']`` epochs; return test accuracy (%) and wall time (s)."""
    mod = circuits.get(name)
    hidden, batch = _defaults(config)
    sizes = [data.n_features, hidden, data.n_outputs]
    circuit = mod.build(sizes, "relu", "ce", seed=config["seed"])
    if name.startswith("kolen_pollack"):
        sched = mod.schedule(circuit, lr=config["lr"], weight_decay=config["kp_weight_decay"])
    elif name in ("il", "il_ei"):
        sched = mod.schedule(circuit, lr=config["il_lr"])
    else:
        sched = mod.schedule(circuit, lr=config["lr"])
    sim = ns.Simulator(circuit, sched, backend=config["backend"], dtype=config["dtype"], seed=config["seed"],
                       progress=False)
    t0 = time.perf_counter()
    with ns.Trace(trace_path, mode="w") as trace:
        history = sim.train(data.train, epochs=config["epochs"], batch_size=batch, test=data.test, trace=trace,
                            scenario="dale_comparison", config=dict(config, circuit=name))
    return {"acc": 100 * history["test_accuracy"][-1], "wall_s": time.perf_counter() - t0,
            "per_epoch": [100 * a for a in history["test_accuracy"]]}


def format_table(rows: list[dict], config: dict) -> str:
    """The markdown table of ``<out>/table.md``."""
    lines = ["| circuit | free | Dale | difference | wall s |", "|---|---|---|---|---|"]
    for r in rows:
        if r["dale"] is None:
            lines.append(f"| {r['circuit']} | {r['free']:.2f} | – | – | {r['wall_s']:.0f} |")
        else:
            lines.append(f"| {r['circuit']} | {r['free']:.2f} | {r['dale']:.2f} | {r['dale'] - r['free']:+.2f} "
                         f"| {r['wall_s']:.0f} |")
    hidden, batch = _defaults(config)
    n_train = "all" if not config["limit_train"] or config["data"] == "digits" else config["limit_train"]
    return ("\n".join(lines) + f"\n\n{config['data']}, {config['epochs']} epoch(s), {n_train} training images, "
            f"hidden {hidden} relu, batch {batch}, lr {config['lr']:g}, seed {config['seed']}; test accuracy %\n")


def run(config: dict) -> list[dict]:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    names = config["circuits"]
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    unknown = [n for n in names if n not in EI_FORM]
    if unknown:
        raise ValueError(f"circuits {unknown} have no row here; choose from {sorted(EI_FORM)}")
    rows = []
    with threadpool_limits(limits=config["threads"]):
        data = load_data(config)
        for name in names:
            free = train_one(name, data, config, out / f"{name}.h5")
            ei_name = EI_FORM[name]
            dale = None if ei_name is None else train_one(ei_name, data, config, out / f"{ei_name}.h5")
            rows.append({"circuit": name, "free": free["acc"], "dale": None if dale is None else dale["acc"],
                         "wall_s": free["wall_s"] + (0.0 if dale is None else dale["wall_s"]),
                         "free_per_epoch": free["per_epoch"], "dale_per_epoch": None if dale is None
                         else dale["per_epoch"]})
            dale_txt = "no E/I form" if dale is None else f"{dale['acc']:.2f}% Dale ({ei_name})"
            print(f"{name}: {free['acc']:.2f}% free, {dale_txt}", flush=True)
    table = format_table(rows, config)
    (out / "table.md").write_text(table)
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
