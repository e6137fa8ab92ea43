"""Alignment diagnostics: how a layered circuit's updates and feedback compare with backprop.

For a circuit that follows the layered naming (populations ``x0..xL`` with error compartments,
feedforward projections between them, biases on ``x1..xL``), on a probe batch:

* ``angle/<P>/update_vs_bp``: angle (degrees) between the circuit's update of feedforward
  projection ``P`` and backprop's, both computed from the same weights and batch;
* ``norm_ratio/<P>``: ``||ΔW_circuit|| / ||ΔW_bp||`` for the same pair;
* ``angle/<P>/B_vs_Wt``: angle between a feedback matrix and the transpose of the forward
  path it stands in for. ``P`` is the first forward projection of that path: ``B_l`` pairs
  with ``W_l``, a skip's feedback ``R_{k,l}`` with ``S_{l,k}``, and a direct feedback
  ``D_k: e_L -> e_k`` with the chain ``W_{k+1} .. W_L`` (compared with the product
  ``W_{k+1}^T ⋯ W_L^T``, i.e. backprop's feedback with the slopes ``f'`` left out).

The circuit's updates come from :meth:`Simulator.run_trial` with ``apply_updates=False`` (a
dry run: the weights do not change; the trial is counted and logged like any other). The
backprop reference, :func:`layered_backprop`, reads only the circuit's feedforward
projections and handles skip connections; with a plain chain it is
:func:`neurosim.analysis.backprop_reference`.

:class:`AlignmentProbe` returns these numbers as a dict, ready for
``Simulator.train(metrics=...)``, which stores them in the trace's per-epoch metrics
(``neurosim plot FILE --what alignment`` draws the ``angle/...`` ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .activations import get_activation
from .analysis import angle_deg, convnet_backprop_reference
from .dynamics import effective_weights
from .losses import get_loss
from .model import Circuit

__all__ = ["layered_backprop", "feedback_paths", "alignment_metrics", "AlignmentProbe"]


def _layer_index(circuit: Circuit, population: str) -> int | None:
    """``l`` for the neurons ``x{l}`` of a layered circuit (compartments map to their neurons)."""
    name = circuit.neuron_of(population)
    if name.startswith("x") and name[1:].isdigit():
        return int(name[1:])
    return None


def _depth(circuit: Circuit) -> int:
    if "sizes" in circuit.meta:
        return len(circuit.meta["sizes"]) - 1
    return max(i for i in (_layer_index(circuit, p.name) for p in circuit.populations) if i is not None)


def _forward_projections(circuit: Circuit) -> list:
    """Feedforward projections from a layer ``x_k`` to a later layer ``x_l`` (``k < l``)."""
    out = []
    for p in circuit.projections:
        if p.pathway != "feedforward":
            continue
        k, l = _layer_index(circuit, p.pre), _layer_index(circuit, p.post)
        if k is not None and l is not None and k < l and p.pre == f"x{k}" and p.post == f"x{l}":
            out.append(p)
    return out


def layered_backprop(circuit: Circuit, weights: Mapping[str, Any], biases: Mapping[str, Any], x: np.ndarray,
                     y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Backprop's updates of every feedforward projection of a layered circuit (learning rate 1).

    The forward pass is ``a_l = Σ_P W_P r_{pre(P)} + b_l`` over the feedforward projections
    ``P`` into ``x_l`` (the chain and any skips), ``r_l = f_l(a_l)`` with each population's own
    activation (``r_0 = f_0(x)``); then ``e_L = -dℓ/da_L`` and
    ``e_k = f_k'(a_k) ⊙ Σ_P W_P^T e_{post(P)}`` over the projections leaving ``x_k``.

    Parameters
    ----------
    circuit : Circuit
        Layered circuit: populations ``x0..xL``; its ``meta`` gives the loss.
    weights : mapping projection -> (n_post, n_pre) array
        Untied weights (tied ones are resolved from them).
    biases : mapping population -> (n,) array
    x : (B, d_0) array; y : (B, d_L) array

    Returns
    -------
    dW : dict projection -> (n_post, n_pre) array
        ``-∂L/∂W`` with the loss summed over the batch, for every feedforward projection.
    db : dict population -> (n,) array
        ``-∂L/∂b`` for ``x1..xL`` that have a bias.
    """
    L = _depth(circuit)
    loss = get_loss(circuit.meta.get("loss", "mse"))
    projs = _forward_projections(circuit)
    w = {p.name: np.asarray(effective_weights(circuit, weights, p.name), dtype=float) for p in projs}
    acts = [get_activation(circuit.population(f"x{l}").activation) for l in range(L + 1)]
    a: list = [np.asarray(x, dtype=float)] + [None] * L
    r: list = [acts[0].f(a[0])] + [None] * L
    for l in range(1, L + 1):
        total = np.zeros((a[0].shape[0], circuit.population(f"x{l}").size))
        for p in projs:
            if p.post == f"x{l}":
                total = total + r[_layer_index(circuit, p.pre)] @ w[p.name].T
        if f"x{l}" in biases:
            total = total + np.asarray(biases[f"x{l}"], dtype=float)
        a[l] = total
        r[l] = acts[l].f(total)
    e: list = [None] * (L + 1)
    e[L] = loss.output_error(a[L], np.asarray(y, dtype=float))
    for k in range(L - 1, 0, -1):
        back = np.zeros_like(a[k])
        for p in projs:
            if p.pre == f"x{k}":
                back = back + e[_layer_index(circuit, p.post)] @ w[p.name]
        e[k] = acts[k].df(a[k]) * back
    dW = {p.name: e[_layer_index(circuit, p.post)].T @ r[_layer_index(circuit, p.pre)] for p in projs}
    db = {f"x{l}": e[l].sum(axis=0) for l in range(1, L + 1) if f"x{l}" in biases}
    return dW, db


def feedback_paths(circuit: Circuit) -> dict[str, list[str]]:
    """For every feedback projection between error compartments, the forward path it mirrors.

    Returns
    -------
    dict feedback projection -> list of forward projection names
        A feedback ``e_l -> e_k`` mirrors the forward projection ``x_k -> x_l`` when one exists,
        otherwise the chain from ``x_k`` to ``x_l`` through the nearest next layer at each hop.
    """
    projs = _forward_projections(circuit)
    out: dict[str, list[str]] = {}
    for fb in circuit.projections:
        if fb.pathway != "feedback":
            continue
        m, k = _layer_index(circuit, fb.pre), _layer_index(circuit, fb.post)
        if m is None or k is None or not m > k:
            continue
        direct = [p.name for p in projs if p.pre == f"x{k}" and p.post == f"x{m}"]
        if direct:
            out[fb.name] = direct[:1]
            continue
        path, at = [], k
        while at < m:
            nxt = [p for p in projs if p.pre == f"x{at}" and _layer_index(circuit, p.post) <= m]
            if not nxt:
                break
            step = min(nxt, key=lambda p: _layer_index(circuit, p.post))
            path.append(step.name)
            at = _layer_index(circuit, step.post)
        if at == m:
            out[fb.name] = path
    return out


def alignment_metrics(sim, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Alignment of a simulator's circuit with backprop on one probe batch (see module docstring).

    Parameters
    ----------
    sim : Simulator
        Its current weights are used and left unchanged.
    x : (B, d_0) array; y : (B, d_L) array
        Probe inputs and targets.

    Returns
    -------
    dict metric name -> float
        ``angle/<P>/update_vs_bp`` and ``norm_ratio/<P>`` for every feedforward projection
        ``P``; ``angle/<P>/B_vs_Wt`` for every feedback matrix. Angles in degrees.
    """
    circuit = sim.circuit
    weights = sim.host_weights()
    biases = sim.host_biases()
    result = sim.run_trial({"x": x, "y": y}, learn=True, apply_updates=False)
    if circuit.meta.get("layer_list"):
        return _conv_alignment(circuit, weights, biases, result, x, y)
    ref, _ = layered_backprop(circuit, weights, biases, x, y)
    out: dict[str, float] = {}
    for name, bp in ref.items():
        if name not in result.updates:
            continue
        upd = np.asarray(result.updates[name], dtype=float)
        out[f"angle/{name}/update_vs_bp"] = angle_deg(upd, bp)
        nb = float(np.linalg.norm(bp))
        out[f"norm_ratio/{name}"] = float(np.linalg.norm(upd)) / nb if nb > 0 else float("nan")
    for fb, path in feedback_paths(circuit).items():
        mirror = np.asarray(effective_weights(circuit, weights, path[0]), dtype=float).T
        for name in path[1:]:
            mirror = mirror @ np.asarray(effective_weights(circuit, weights, name), dtype=float).T
        b = np.asarray(effective_weights(circuit, weights, fb), dtype=float)
        out[f"angle/{path[0]}/B_vs_Wt"] = angle_deg(b, mirror)
    return out


def _conv_alignment(circuit: Circuit, weights: Mapping[str, Any], biases: Mapping[str, Any], result, x: np.ndarray,
                    y: np.ndarray) -> dict[str, float]:
    """:func:`alignment_metrics` of a convolutional layered circuit (``meta["layer_list"]``).

    Backprop through the convolutional network is the reference; ``B_l`` (kernel-shaped, or a
    dense matrix) is compared with ``W_l`` in ``W_l``'s layout.
    """
    m = circuit.meta
    L = len(m["sizes"]) - 1
    W = [np.asarray(weights[f"W{l}"], dtype=float) for l in range(1, L + 1)]
    b = [np.asarray(biases[f"x{l}"], dtype=float) for l in range(1, L + 1)]
    dW, _ = convnet_backprop_reference(m["layer_list"], m["input_shape"], W, b, x, y, m["activation"], m["loss"])
    out: dict[str, float] = {}
    for l in range(1, L + 1):
        upd = np.asarray(result.updates.get(f"W{l}", np.zeros_like(W[l - 1])), dtype=float)
        out[f"angle/W{l}/update_vs_bp"] = angle_deg(upd, dW[l - 1])
        nb = float(np.linalg.norm(dW[l - 1]))
        out[f"norm_ratio/W{l}"] = float(np.linalg.norm(upd)) / nb if nb > 0 else float("nan")
        name = f"B{l}"
        if l > 1 and name in circuit.projection_names:
            fb = np.asarray(effective_weights(circuit, weights, name), dtype=float)
            out[f"angle/W{l}/B_vs_Wt"] = angle_deg(fb if circuit.projection(name).transposed else fb.T, W[l - 1])
    return out


@dataclass(frozen=True, eq=False)
class AlignmentProbe:
    """Per-epoch alignment metrics on a fixed probe batch, for ``Simulator.train(metrics=...)``.

    Parameters
    ----------
    x : (B, d_0) array
        Probe inputs (e.g. the first 256 training samples).
    y : (B, d_L) array
        Their targets.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=float), np.asarray(self.y, dtype=float)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
            raise ValueError(
                f"AlignmentProbe: x {x.shape} and y {y.shape} must be 2-D with the same number (>= 1) of rows"
            )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @classmethod
    def from_split(cls, split, size: int = 256) -> AlignmentProbe:
        """The first ``size`` samples of a :class:`neurosim.data.Split`."""
        n = min(int(size), len(split))
        return cls(split.x[:n], split.y[:n])

    def __call__(self, sim, epoch: int) -> dict[str, float]:
        """Metrics of the simulator's current weights (``epoch`` is unused; the trace records it)."""
        return alignment_metrics(sim, self.x, self.y)
