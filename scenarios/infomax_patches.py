"""Linsker's local infomax on natural image patches (the scikit-learn sample images).

Grey-level ``patch``×``patch`` patches of ``china.jpg`` and ``flower.jpg`` (pixel mean removed,
scaled to a largest covariance eigenvalue of 1) feed one infomax stage with ``outputs`` units and output
noise ``σ``. Prints the information of the learned code beside the water-filling optimum at the
learned power ``||W||²_F`` (the data covariance estimated from all patches), writes the learned
filters (rows of ``W``) to ``<out>/filters.png`` and the table to ``<out>/table.md``.

Run::

    neurosim run scenarios/infomax_patches.py --out infomax_patches

Needs scikit-learn (sample images) and matplotlib.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import neurosim as ns
import neurosim.scenario
from neurosim.circuits import infomax

CONFIG = {
    "out": "infomax_patches",
    "seed": 0,
    "backend": "numpy",
    "dtype": "float64",
    "patch": 8,
    "outputs": 16,
    "sigma": 0.2,
    "decay": 1.0,
    "lr": 0.02,
    "trials": 600,
    "batch": 512,
    "n_patches": 50000,
}


def patches(config: dict) -> np.ndarray:
    """Random grey patches (N, patch²), centred per pixel and scaled so that the largest eigenvalue of
    their covariance is 1 (keeps ``Q̂``'s eigenvalues, hence the Euler step, bounded)."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(config["seed"])
    p, out = config["patch"], []
    images = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    for k in range(config["n_patches"]):
        img = images[k % len(images)]
        i, j = rng.integers(0, img.shape[0] - p), rng.integers(0, img.shape[1] - p)
        out.append(img[i:i + p, j:j + p].ravel())
    x = np.asarray(out)
    x -= x.mean(axis=0)
    return x / np.sqrt(np.linalg.eigvalsh(x.T @ x / len(x)).max())


def run(config: dict) -> dict:
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    x = patches(config)
    cov = x.T @ x / len(x)
    sizes = [x.shape[1], config["outputs"]]
    circuit = infomax.build(sizes, seed=config["seed"], sigma=config["sigma"])
    opts = {"lr": config["lr"], "decay": config["decay"], "settle": ns.Converged(rtol=1e-8, atol=1e-10, window=2)}
    sim = ns.Simulator(circuit, infomax.schedule(circuit, **opts), backend=config["backend"], dtype=config["dtype"],
                       seed=config["seed"])
    rng = np.random.default_rng(config["seed"] + 1)
    t0 = time.perf_counter()
    for t in range(config["trials"]):
        if t == 2 * config["trials"] // 3:  # anneal the last third
            sim.schedule = infomax.schedule(circuit, **opts | {"lr": config["lr"] / 10, "lr_lateral": 0.01})
        sim.run_trial({"x": x[rng.integers(0, len(x), config["batch"])]})
    wall = time.perf_counter() - t0
    W = sim.host_weights()["W1"]
    info, power = infomax.information(W, cov, config["sigma"]), float((W ** 2).sum())
    opt, g2 = infomax.water_filling(cov, W.shape[0], power, config["sigma"])
    table = "\n".join([
        f"{config['patch']}x{config['patch']} patches of the scikit-learn sample images, {config['outputs']} outputs, "
        f"σ {config['sigma']}, μ {config['decay']}, {config['trials']} trials of {config['batch']}, {wall:.0f} s",
        "", "| information (nats) | water-filling optimum (nats) | relative gap | power ‖W‖² | directions used |",
        "|---|---|---|---|---|",
        f"| {info:.4f} | {opt:.4f} | {1 - info / opt:.2e} | {power:.3f} | {int((g2 > 0).sum())} of {len(g2)} |"])
    (out / "table.md").write_text(table + "\n")
    print(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = W.shape[0]
        cols = int(np.ceil(np.sqrt(n)))
        fig, axes = plt.subplots(cols, cols, figsize=(1.2 * cols, 1.2 * cols))
        for k, ax in enumerate(np.ravel(axes)):
            ax.axis("off")
            if k < n:
                ax.imshow(W[k].reshape(config["patch"], config["patch"]), cmap="gray")
        fig.suptitle("infomax filters (rows of W)")
        fig.savefig(out / "filters.png", dpi=80)
    except ImportError:
        print("matplotlib is not installed: no filters.png")
    return {"information": info, "optimum": opt, "gap": 1 - info / opt}


if __name__ == "__main__":
    neurosim.scenario.main(run, CONFIG)
