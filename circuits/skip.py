"""Skip connections (Im, Patil & Branson 2020) with feedback alignment or backprop, as dynamics.

Besides the chain ``W_l: x_{l-1} -> x_l`` the network has skip projections
``S_{l,k}: x_k -> x_l`` between non-adjacent layers (``k < l-1``), so that
``tau dx_l/dt = -x_l + W_l r_{l-1} + Σ_k S_{l,k} r_k + b_l`` (ALGORITHMS.md §6). Every
forward projection has its own feedback: ``B_l: e_l -> e_{l-1}`` and ``R_{k,l}: e_l -> e_k``
(none for skips leaving the input), so that

``tau_e de_k/dt = -e_k + f'(a_k) ⊙ (B_{k+1} e_{k+1} + Σ_l R_{k,l} e_l)``

with ``e_L = -dℓ/da_L`` clamped. Errors reach early layers in fewer hops. The learning phase
applies ``ΔW_l = η e_l r_{l-1}^T``, ``ΔS_{l,k} = η e_l r_k^T``, ``Δb_l = η e_l`` (local).

``feedback="uniform"``/``"gaussian"``: fixed random ``B`` and ``R`` (feedback alignment with
skips). ``feedback="transpose"``: ``B_l = W_l^T`` and ``R_{k,l} = S_{l,k}^T`` tied (backprop
with skips; exact).

Names: ``S{l}_{k}`` for ``x_k -> x_l`` and ``R{k}_{l}`` for its feedback ``e_l -> e_k``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from neurosim.dale import EISplit, dale_initialise
from neurosim.model import Circuit, Projection, Tied
from neurosim.plasticity import SGD, OuterProduct
from neurosim.schedule import Converged, Schedule

from . import _feedback, _mlp

NAME = "skip"
SUMMARY = "skip connections between non-adjacent layers, each with its own feedback: FA or backprop (Im 2020)"
FEEDBACK = ("uniform", "gaussian", "transpose")

__all__ = ["NAME", "SUMMARY", "FEEDBACK", "build", "schedule", "skip_pairs"]


def skip_pairs(skips, depth: int) -> list[tuple[int, int]]:
    """The ``(k, l)`` pairs of the skip projections ``x_k -> x_l``.

    Parameters
    ----------
    skips : "all", "output", str or sequence of (k, l)
        ``"all"``: every ``k < l-1``; ``"output"``: every ``x_k -> x_L`` with ``k < L-1``;
        ``"0-2,1-3"``: explicit pairs; or a sequence of ``(k, l)`` tuples.
    depth : int
        Number of weight layers ``L``.
    """
    if skips == "all":
        return [(k, l) for l in range(2, depth + 1) for k in range(0, l - 1)]
    if skips == "output":
        return [(k, depth) for k in range(0, depth - 1)]
    if isinstance(skips, str):
        try:
            pairs = [tuple(int(v) for v in item.split("-")) for item in skips.split(",") if item.strip()]
        except ValueError:
            raise ValueError(f"skips={skips!r} must be 'all', 'output' or pairs like '0-2,1-3'") from None
    else:
        pairs = [tuple(int(v) for v in p) for p in skips]
    for p in pairs:
        if len(p) != 2 or not (0 <= p[0] < p[1] - 1 and p[1] <= depth):
            raise ValueError(
                f"skips: pair {p!r} must be (k, l) with 0 <= k < l-1 and l <= L={depth} (a skip spans a layer)"
            )
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"skips={skips!r} lists a pair twice")
    return sorted(pairs, key=lambda p: (p[1], p[0]))


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          tau_ms: float = 10.0, tau_error_ms: float | None = None, dale: EISplit | float | None = None,
          weight_scale: float = 1.0, weight_init: str = "uniform", skips="all", skip_scale: float = 1.0,
          feedback: str = "uniform", feedback_scale: float = 1.0) -> Circuit:
    """Build a layered circuit with skip connections.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L`` (at least one hidden layer).
    activation, loss : str
        Hidden non-linearity; ``mse`` (linear output) or ``ce`` (softmax).
    seed : int
        Seeds ``W`` (as in :mod:`circuits.backprop`), then ``S``, then the random feedback.
    tau_ms, tau_error_ms : float
        Time constants of the forward and error populations in ms.
    dale : EISplit or float, optional
        Excitatory/inhibitory hidden populations; ``W`` and ``S`` keep their column signs.
    weight_scale : float
    weight_init : {"uniform", "gaussian"}
    skips : "all", "output", str or sequence of (k, l)
        Which skip projections exist (see :func:`skip_pairs`).
    skip_scale : float
        ``S_{l,k} ~ U(-s, s)``, ``s = skip_scale / sqrt(d_k)`` (>= 0; 0 starts them silent).
    feedback : {"uniform", "gaussian", "transpose"}
        Random feedback for every projection (FA), or tied transposes (backprop).
    feedback_scale : float
        Multiplies the scale ``1/sqrt(d_pre)`` of the random feedback.
    """
    _feedback.check_choice("feedback", feedback, FEEDBACK)
    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms, tau_error_ms, _feedback.as_split(dale))
    L = spec.depth
    if L < 2:
        raise ValueError(f"sizes={list(spec.sizes)}: skip connections need at least one hidden layer")
    if not (skip_scale >= 0 and np.isfinite(skip_scale)):
        raise ValueError(f"skip_scale={skip_scale!r} must be finite and >= 0")
    pairs = skip_pairs(skips, L)
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale, weight_init)
    pops = _mlp.forward_populations(spec, biases) + _mlp.error_populations(spec)
    projs = _mlp.forward_projections(spec, weights)
    for k, l in pairs:
        s = skip_scale / np.sqrt(spec.sizes[k])
        w = rng.uniform(-s, s, size=(spec.sizes[l], spec.sizes[k]))
        split = _mlp.presynaptic_split(spec, k)
        if split is not None:
            w = dale_initialise(w, split.signs(spec.sizes[k]))
        projs.append(Projection(f"S{l}_{k}", f"x{k}", f"x{l}", w, pathway="feedforward", plastic=True,
                                sign="dale" if split is not None else "free"))
    feedback_of = [(f"B{l}", f"W{l}", l - 1, l) for l in range(2, L + 1)]
    feedback_of += [(f"R{k}_{l}", f"S{l}_{k}", k, l) for k, l in pairs if k >= 1]
    for name, source, k, l in feedback_of:
        if feedback == "transpose":
            b = Tied(source, "transpose")
        else:
            b = _feedback.random_feedback(feedback, (spec.sizes[k], spec.sizes[l]), spec.sizes[k], rng, feedback_scale)
        projs.append(_feedback.feedback_projection(name, l, k, b))
    meta = _feedback.layered_meta(spec, seed, feedback=feedback, feedback_scale=feedback_scale,
                                  weight_init=weight_init, skips=[list(p) for p in pairs], skip_scale=skip_scale)
    return Circuit(pops, projs, name=NAME, meta=meta)


def schedule(circuit: Circuit, *, dt_ms: float | None = None, settle: Converged | None = None,
             lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
             integrator: str = "euler") -> Schedule:
    """Phases ``forward`` -> ``backward`` -> ``learn`` with ``ΔS_{l,k} = e_l r_k^T`` besides ``ΔW``.

    Parameters
    ----------
    dt_ms : float, optional
        Integration step in ms (default ``tau_ms``).
    settle : Converged, optional
        Stopping rule of both relaxations (default: residual at round-off).
    lr, momentum, weight_decay : float
        SGD on every weight and bias (updates averaged over the batch).
    integrator : str
    """
    rules = {f"S{l}_{k}": OuterProduct(post=(f"e{l}", "u"), pre=(f"x{k}", "r")) for k, l in circuit.meta["skips"]}
    return _feedback.three_phase_schedule(circuit, dt_ms=dt_ms, settle=settle, integrator=integrator,
                                          optimizer=SGD(lr=lr, momentum=momentum, weight_decay=weight_decay),
                                          extra_rules=rules)
