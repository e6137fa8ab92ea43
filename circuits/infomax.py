"""Local infomax in a linear network (Linsker 1992, "Local synaptic learning rules suffice to maximize
mutual information in a linear network").

Each stage ``l = 1..L`` maps its input ``r_{l-1}`` (``r_0 = x``, ``r_l = y_l``) to a noisy linear
response and decorrelates it by lateral relaxation:

``y_l = W_l r_{l-1} + ξ_l`` (``ξ_l ~ N(0, σ² I)``),  ``τ du_l/dt = −Q̂_l u_l + y_l``  →  ``u_l* = Q̂_l⁻¹ y_l``,

with ``Q̂_l`` a running estimate of the output covariance ``C_l = W_l Σ_{l-1} W_lᵀ + σ² I`` held
in anti-Hebbian lateral weights ``L_l = I − Q̂_l`` (so ``τ du/dt = −u + y + L u``). After the
relaxation the local rules are

``ΔW_l = η_W (u_l* r_{l-1}ᵀ − μ W_l)``,  ``ΔL_l = η_Q (I − L_l − y_l y_lᵀ)``  (i.e. ``ΔQ̂ = η_Q (y yᵀ − Q̂)``),

batch means. With ``Q̂_l = C_l``, ``E[u* rᵀ] = C⁻¹ W Σ = ∂I/∂W`` for the information
``I_l = ½ log det(I + W_l Σ_{l-1} W_lᵀ / σ²)``, so ``W_l`` ascends ``I_l − (μ/2)||W_l||²_F``; the
weight decay ``μ`` is the Lagrange multiplier of the power constraint ``||W_l||²_F = P``, and the
fixed point is the water-filling solution ``g_k² = max(0, 1/μ − σ²/λ_k)`` on the top eigenvalues
``λ_k`` of ``Σ_{l-1}`` (:func:`water_filling`).

``neurosim check infomax`` compares one trial's updates with the same rules computed by dense
linear algebra from the recorded noise (exact up to the relaxation's tolerance), and its
``check_comparisons`` hook trains the circuit on Gaussian data with a decaying spectrum and adds
each stage's relative information gap ``1 − I(W)/I_opt(P)`` (``P = ||W||²_F`` learned) to the
report's rows, so that ``max_relative_error`` covers it.

The seed paper for this circuit (Liu, arXiv 2109.13102) was not available offline; its own rule
could not be reproduced. This is Linsker's rule in the form above.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from neurosim.model import Circuit, Population, Projection
from neurosim.plasticity import SGD, OuterProduct, Rule, SynapseView
from neurosim.schedule import Converged, Learn, Phase, Schedule
from neurosim.sources import Source
from neurosim.units import positive_ms

NAME = "infomax"
SUMMARY = "Linsker's local infomax: noisy linear stages, lateral anti-Hebbian decorrelation, power-constrained Hebb"

__all__ = ["NAME", "SUMMARY", "RecordedNoise", "LateralAntiHebb", "build", "schedule", "layer_parameters",
           "information", "water_filling", "check_reference", "check_comparisons", "train_gaussian",
           "spectrum_covariance"]


@dataclass(frozen=True, eq=False)
class RecordedNoise(Source):
    """``σ·N(0, 1)`` per sample and unit from the simulator's generator; keeps its last draw.

    The last draw (host array, shape (B, n)) is in ``record["last"]``: the check's reference
    recomputes the trial from it.

    Parameters
    ----------
    sigma : float
        Standard deviation (>= 0), in the units of the population's state.
    """

    sigma: float = 0.1
    record: dict = field(default_factory=dict)
    random: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"RecordedNoise.sigma={self.sigma!r} must be finite and >= 0, e.g. 1.0")

    def evaluate(self, state, data, xp, dtype, shape, rng: np.random.Generator | None = None):
        if rng is None:
            raise ValueError("RecordedNoise needs the simulator's generator: evaluate(..., rng=numpy.random.Generator)")
        draw = self.sigma * rng.standard_normal(shape)
        self.record["last"] = draw
        return xp.asarray(draw, dtype=dtype)

    def describe(self) -> str:
        return f"{self.sigma:g}*N(0,1) (recorded)"


@dataclass(frozen=True)
class LateralAntiHebb(Rule):
    """``ΔL = B·I − yᵀy`` (batch sum) on a lateral projection; with weight decay 1 the optimiser
    gives ``L ← L + η (I − L − mean yyᵀ)``, i.e. ``Q̂ = I − L`` tracks the output covariance.

    Parameters
    ----------
    response : str
        The feedforward compartment ``y_l`` of the neurons (read on both sides of the synapse).
    """

    response: str

    def delta(self, view: SynapseView):
        post, pre = view.post_signal(self.response, "u"), view.pre_signal(self.response, "u")
        xp = np if type(post).__module__.split(".")[0] == "numpy" else __import__("cupy")
        return post.shape[0] * xp.eye(post.shape[1], dtype=post.dtype) - post.T @ pre

    def describe(self) -> str:
        return f"B·I − u[{self.response}]ᵀ·u[{self.response}]"


def build(sizes: Sequence[int], activation: str = "linear", loss: str = "mse", *, seed: int = 0,
          sigma: float = 0.5, tau_ms: float = 10.0, weight_scale: float = 0.3) -> Circuit:
    """Build ``L = len(sizes) − 1`` infomax stages.

    Parameters
    ----------
    sizes : sequence of int
        Widths ``d_0 .. d_L`` (input first).
    activation : str
        Ignored beyond validation: the network is linear (``neurosim check`` passes its default
        ``tanh``); the stages are always linear.
    loss : str
        Unused (there is no target; ``neurosim check`` passes its default).
    seed : int
        Seeds ``W_l ~ U(-s, s)``, ``s = weight_scale/sqrt(d_{l-1})``.
    sigma : float
        Output noise standard deviation ``σ > 0`` (state units).
    tau_ms : float
        Time constant of the lateral relaxation in ms.
    weight_scale : float
        Initial weight scale (> 0).

    Returns
    -------
    Circuit
        ``x0`` (input), per stage ``u_l`` (lateral state) and its compartment ``y_l`` (the noisy
        feedforward response, zero bias); projections ``W_l`` (plastic), ``I_l`` (``y_l → u_l``)
        and ``L_l`` (lateral ``u_l → u_l``, plastic, starts at 0: ``Q̂ = I``).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes={sizes} must list at least two positive widths, e.g. [8, 4]")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma={sigma!r} must be finite and > 0, e.g. sigma=0.5")
    if not (np.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"weight_scale={weight_scale!r} must be finite and > 0, e.g. 0.3")
    tau = positive_ms(tau_ms, "tau_ms")
    rng = np.random.default_rng(seed)
    pops = [Population("x0", sizes[0], tau, "linear", role="input")]
    projs = []
    for l in range(1, len(sizes)):
        n, s = sizes[l], weight_scale / np.sqrt(sizes[l - 1])
        pre = "x0" if l == 1 else f"y{l - 1}"
        pops += [Population(f"u{l}", n, tau, "linear", role="lateral"),
                 Population(f"y{l}", n, None, "linear", bias=np.zeros(n), compartment_of=f"u{l}", role="response")]
        projs += [Projection(f"W{l}", pre, f"y{l}", rng.uniform(-s, s, (n, sizes[l - 1])), signal="u", plastic=True),
                  Projection(f"I{l}", f"y{l}", f"u{l}", np.eye(n), signal="u"),
                  Projection(f"L{l}", f"u{l}", f"u{l}", np.zeros((n, n)), pathway="feedback", signal="u",
                             plastic=True)]
    meta = {"sizes": sizes, "activation": "linear", "loss": "mse", "seed": seed, "dale": None,
            "sigma": float(sigma), "tau_ms": tau}
    return Circuit(pops, projs, name=NAME, meta=meta)


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(W_l, y_l)``: the zero, unlearned bias lives on the response compartment."""
    return f"W{layer}", f"y{layer}"


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
             max_steps: int = 20000, lr: float = 0.02, lr_lateral: float = 0.1, decay: float = 1.0) -> Schedule:
    """Phases ``relax`` (noise drawn, lateral relaxation to ``u* = Q̂⁻¹y``) → ``learn``.

    Parameters
    ----------
    dt_ms : float, optional
        Euler step in ms (default ``τ/5``: stable while the eigenvalues of ``Q̂`` stay below 10).
    settle : Converged, optional
        Default ``Converged(rtol=1e-11, atol=1e-13, window=2)``.
    max_steps : int
        Longest relaxation in steps.
    lr, lr_lateral : float
        ``η_W`` and ``η_Q`` (batch means).
    decay : float
        ``μ >= 0``: the power constraint's multiplier (weight decay of ``W``); the water level is ``1/μ``.
    """
    m = circuit.meta
    if circuit.name != NAME or "sigma" not in m:
        raise ValueError(f"infomax.schedule: circuit {circuit.name!r} was not built by circuits.infomax.build")
    if not (np.isfinite(decay) and decay >= 0):
        raise ValueError(f"decay={decay!r} must be finite and >= 0, e.g. 1.0")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps={max_steps!r} must be a positive number of steps")
    dt = m["tau_ms"] / 5 if dt_ms is None else positive_ms(dt_ms, "dt_ms")
    stages = range(1, len(m["sizes"]))
    evolve = [f"u{l}" for l in stages] + [f"y{l}" for l in stages]
    noise = {f"y{l}": RecordedNoise(m["sigma"]) for l in stages}
    relax = Phase("relax", evolve=evolve, projections="all", clamp={"x0": "x"}, inputs=noise, dt_ms=dt,
                  max_ms=dt * int(max_steps), until=settle or Converged(rtol=1e-11, atol=1e-13, window=2))
    rules = {f"W{l}": OuterProduct(post=(f"u{l}", "u"), pre=("x0" if l == 1 else f"y{l - 1}", "u")) for l in stages}
    rules |= {f"L{l}": LateralAntiHebb(f"y{l}") for l in stages}
    per = {f"W{l}": SGD(lr=lr, weight_decay=decay) for l in stages}
    per |= {f"L{l}": SGD(lr=lr_lateral, weight_decay=1.0) for l in stages}
    learn = Learn(rules=rules, optimizer=SGD(lr=lr), per_parameter=per)
    return Schedule(circuit, [relax, learn], readout=f"u{len(m['sizes']) - 1}", loss="mse")


def information(W: np.ndarray, cov: np.ndarray, sigma: float) -> float:
    """``½ log det(I + W Σ Wᵀ / σ²)`` in nats."""
    m = W.shape[0]
    return 0.5 * float(np.linalg.slogdet(np.eye(m) + W @ cov @ W.T / sigma ** 2)[1])


def water_filling(cov: np.ndarray, n_out: int, power: float, sigma: float) -> tuple[float, np.ndarray]:
    """The maximum of ``½ log det(I + WΣWᵀ/σ²)`` over ``W`` (n_out, n) with ``||W||²_F = power``.

    Returns
    -------
    info : float
        ``½ Σ_k log(1 + g_k² λ_k / σ²)`` with ``g_k² = max(0, ν − σ²/λ_k)``, ``Σ g_k² = power``,
        over the ``min(n, n_out)`` largest eigenvalues ``λ_k`` of ``Σ``.
    gains : ndarray
        ``g_k²``.
    """
    lam = np.sort(np.linalg.eigvalsh(cov))[::-1][:min(n_out, cov.shape[0])]
    lam = lam[lam > 0]
    floors = sigma ** 2 / lam
    for k in range(len(lam), 0, -1):  # the largest k whose water level stays above every floor used
        nu = (power + floors[:k].sum()) / k
        if nu > floors[k - 1]:
            break
    g2 = np.maximum(0.0, nu - floors)
    g2[k:] = 0.0
    return 0.5 * float(np.sum(np.log1p(g2 * lam / sigma ** 2))), g2


def _noise_draws(sched: Schedule) -> dict:
    phase = sched.phase("relax")
    return {k: v.record["last"] for k, v in phase.inputs.items()}


def check_reference(circuit: Circuit, schedule: Schedule, weights: dict, biases: dict, x: np.ndarray,
                    y: np.ndarray) -> tuple[dict, dict]:
    """``neurosim check`` hook: the trial's rules by linear algebra from the recorded noise.

    ``y_l = W_l r_{l-1} + ξ_l``, ``u_l* = (I − L_l)⁻¹ y_l``, ``ΔW_l = u_l*ᵀ r_{l-1}``,
    ``ΔL_l = B I − y_lᵀ y_l`` (batch sums); the (zero, unlearned) bias updates are 0.
    """
    noise = _noise_draws(schedule)
    r = np.asarray(x, dtype=float)
    dW, db = {}, {}
    for l in range(1, len(circuit.meta["sizes"])):
        W, L = weights[f"W{l}"], weights[f"L{l}"]
        yl = r @ W.T + noise[f"y{l}"]
        u = np.linalg.solve(np.eye(L.shape[0]) - L, yl.T).T
        dW[f"W{l}"] = u.T @ r
        dW[f"L{l}"] = yl.shape[0] * np.eye(L.shape[0]) - yl.T @ yl
        db[f"y{l}"] = np.zeros(W.shape[0])
        r = yl
    return dW, db


def spectrum_covariance(n: int, seed: int = 0, ratio: float = 0.8) -> np.ndarray:
    """``Σ = R diag(ratio^k) Rᵀ`` (k = 0..n−1) with a random rotation ``R``: the check's data."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return (q * ratio ** np.arange(n)) @ q.T


def train_gaussian(sizes: Sequence[int], cov: np.ndarray, *, seed: int = 0, trials: int = 600, batch: int = 512,
                   backend: str = "numpy", dtype: str = "float64", build_options: dict | None = None,
                   schedule_options: dict | None = None, anneal: float = 0.1) -> tuple[Any, list]:
    """Train on ``x ~ N(0, Σ)``; the last third of the trials at ``anneal`` times the learning rates.

    Returns
    -------
    sim : Simulator
    gaps : list of dict
        Per stage: ``information``, ``optimum``, ``power`` and ``relative_gap = 1 − I/I_opt``,
        each stage's input covariance the previous stage's learned ``C = WΣWᵀ + σ²I``.
    """
    from neurosim.simulator import Simulator

    circuit = build(sizes, seed=seed, **(build_options or {}))
    sopts = dict(schedule_options or {})
    sopts.setdefault("settle", Converged(rtol=1e-8, atol=1e-10, window=2))
    sim = Simulator(circuit, schedule(circuit, **sopts), backend=backend, dtype=dtype, seed=seed)
    chol = np.linalg.cholesky(cov)
    rng = np.random.default_rng(seed + 7)
    for t in range(int(trials)):
        if t == 2 * int(trials) // 3:
            sim.schedule = schedule(circuit, **sopts | {"lr": sopts.get("lr", 0.02) * anneal,
                                                        "lr_lateral": sopts.get("lr_lateral", 0.1) * anneal})
        sim.run_trial({"x": rng.normal(size=(batch, cov.shape[0])) @ chol.T})
    sigma = circuit.meta["sigma"]
    gaps, c = [], cov
    for l in range(1, len(sizes)):
        W = sim.host_weights()[f"W{l}"]
        info, power = information(W, c, sigma), float((W ** 2).sum())
        opt, _ = water_filling(c, W.shape[0], power, sigma)
        gaps.append({"stage": l, "information": info, "optimum": opt, "power": power,
                     "relative_gap": 1.0 - info / opt})
        c = W @ c @ W.T + sigma ** 2 * np.eye(W.shape[0])
    return sim, gaps


def check_comparisons(report, options: dict) -> dict:
    """``neurosim check`` hook: train on ``N(0, Σ)`` (spectrum ``0.8^k``) and add each stage's information
    gap to water-filling as a row of the report (so ``max_relative_error`` includes it)."""
    s = report.settings
    sizes = [int(v) for v in str(s["sizes"]).split(",")]
    cov = spectrum_covariance(sizes[0], seed=int(s["seed"]))
    import inspect

    bkeys = set(inspect.signature(build).parameters)
    bopts = {k: v for k, v in options.items() if k in bkeys}
    sopts = {k: v for k, v in options.items() if k not in bkeys}
    _, gaps = train_gaussian(sizes, cov, seed=int(s["seed"]), backend=s["backend"], dtype=s["dtype"],
                             build_options=bopts, schedule_options=sopts)
    for g in gaps:
        report.layers.append({"layer": f"info{g['stage']}", "shape": [sizes[g["stage"]], sizes[g["stage"] - 1]],
                              "dW_rel_error": abs(g["relative_gap"]), "dW_angle_deg": float("nan"),
                              "db_rel_error": 0.0, "db_angle_deg": float("nan")})
    return {"information_vs_water_filling": gaps}
