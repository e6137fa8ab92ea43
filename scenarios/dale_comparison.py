"""Dale's law in the feedback-alignment family: MNIST accuracy with and without it.

Every circuit of ``scenarios/fa_family_mnist.py`` is trained twice from the same seed: once
with free-signed weights, once with excitatory/inhibitory hidden units (``dale_exc`` of them
excitatory, inputs excitatory) whose outgoing forward weights keep their sign (sign-masked
weights, projected SGD; ALGORITHMS.md §10.1). One trace per run; the table (also written to
``<out>/table.md``) lists test accuracy side by side.

Defaults are short (1 epoch on 10000 training images, z-scored pixels: with all-excitatory
input weights, unit-scaled non-negative pixels push every hidden unit the same way).
Run: ``neurosim run scenarios/dale_comparison.py --set epochs=5 --set limit_train=0``.
"""
from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

import neurosim as ns
import neurosim.scenario
from neurosim.scenario import load_scenario

FAMILY = load_scenario(Path(__file__).with_name("fa_family_mnist.py"))

CONFIG = dict(FAMILY.CONFIG, out="dale_comparison", epochs=1, limit_train=10000, scale="zscore")
CONFIG.pop("dale")


def run(config: dict) -> list[dict]:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with threadpool_limits(limits=config["threads"]):
        data = FAMILY.load_data(config)
        for entry in config["circuits"]:
            tag = entry.replace(":", "_").replace("=", "-")
            pair = [FAMILY.train_circuit(entry, data, config, out / f"{tag}{suffix}.h5", dale=dale)
                    for dale, suffix in ((False, ""), (True, "_dale"))]
            rows.append({"circuit": entry, "free": pair[0]["test_acc"], "dale": pair[1]["test_acc"],
                         "wall_s": pair[0]["wall_s"] + pair[1]["wall_s"]})
            print(f"{entry}: {pair[0]['test_acc']:.2f}% free, {pair[1]['test_acc']:.2f}% with Dale", flush=True)
    lines = [f"| circuit | test acc % free signs | test acc % Dale (exc {config['dale_exc']:g}) | difference "
             "| wall s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['circuit']} | {r['free']:.2f} | {r['dale']:.2f} | {r['dale'] - r['free']:+.2f} "
                     f"| {r['wall_s']:.0f} |")
    table = "\n".join(lines) + f"\n\n{config['epochs']} epoch(s), {config['limit_train'] or 60000} training images\n"
    (out / "table.md").write_text(table)
    print()
    print(table)
    return rows


if __name__ == "__main__":
    ns.scenario.main(run, CONFIG)
