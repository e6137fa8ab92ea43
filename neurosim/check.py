"""``neurosim check``: one trial of a circuit against backprop computed algebraically, or its own reference.

The circuit runs its schedule once on a random network and batch; its raw updates (learning
rate 1, loss summed over the batch) are compared layer by layer with
:func:`neurosim.analysis.backprop_reference`, which shares no code with any circuit, or with the
updates of the circuit module's ``check_reference`` hook where it defines one
(:mod:`neurosim.circuit_contract`).
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .analysis import angle_deg, backprop_reference, convnet_backprop_reference, relative_error
from .simulator import Simulator
from .table import format_table

__all__ = ["CheckReport", "run_check", "split_options", "random_batch", "layer_parameters", "DECLARED_TOLERANCES",
           "declared_tolerance"]

#: ``(circuit, dtype) -> (relative tolerance, options that must be set for it)``: the largest
#: relative error of a check against backprop that each circuit's documentation promises.
DECLARED_TOLERANCES: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {
    # docs/circuits/backprop.md, "Exactness": 1e-8 relative in float64, any dt, RK4, exponential Euler
    ("backprop", "float64"): (1e-8, {}),
}


def declared_tolerance(circuit: str, dtype: str, options: Mapping[str, Any]) -> float | None:
    """The relative tolerance ``circuit`` declares for this dtype and these options, or ``None``.

    Parameters
    ----------
    circuit
        Circuit name.
    dtype
        ``"float64"`` or ``"float32"``.
    options
        The ``--set`` options of the check (a tolerance that needs an option, e.g.
        ``feedback=transpose``, applies only when it is set).
    """
    entry = DECLARED_TOLERANCES.get((circuit, dtype))
    if entry is None:
        return None
    tol, required = entry
    return tol if all(options.get(k) == v for k, v in required.items()) else None


@dataclass
class CheckReport:
    """Result of a check: per-layer agreement with the reference (backprop by default) plus the phase log.

    Attributes
    ----------
    reference : str
        What the updates were compared with.
    tolerance : float or None
        Relative tolerance the verdict is judged against (given, or declared by the circuit);
        ``None``: no verdict.
    """

    circuit: str
    settings: dict
    layers: list = field(default_factory=list)
    phase_log: str = ""
    arrays: dict = field(default_factory=dict, repr=False)
    comparisons: dict = field(default_factory=dict)
    reference: str = "backprop (algebraic)"
    tolerance: float | None = None

    @property
    def max_relative_error(self) -> float:
        """Largest relative error of any layer's weight or bias update."""
        return max((max(r["dW_rel_error"], r["db_rel_error"]) for r in self.layers), default=float("nan"))

    @property
    def passed(self) -> bool | None:
        """Whether the largest relative error is within :attr:`tolerance` (``None`` without one)."""
        if self.tolerance is None:
            return None
        return bool(self.max_relative_error <= self.tolerance)  # NaN fails

    def verdict(self) -> str:
        """One line: PASS/FAIL against the tolerance, or that there is none to judge against."""
        if self.tolerance is None:
            return ("verdict: none (no tolerance declared for this circuit, dtype and options; "
                    "give one with --tolerance)")
        word = "PASS" if self.passed else "FAIL"
        op = "<=" if self.passed else ">"
        return f"verdict: {word}: max relative error {self.max_relative_error:.3e} {op} tolerance {self.tolerance:.1e}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able report (``arrays`` left out)."""
        return {"circuit": self.circuit, "settings": self.settings, "reference": self.reference, "layers": self.layers,
                "max_relative_error": self.max_relative_error, "tolerance": self.tolerance,
                "passed": self.passed, "comparisons": self.comparisons}

    def table(self) -> str:
        """The report as text: settings, phase log, per-layer table, verdict."""
        rows = [[r["layer"], str(tuple(r["shape"])), f"{r['dW_rel_error']:.3e}", f"{r['dW_angle_deg']:.4f}",
                 f"{r['db_rel_error']:.3e}", f"{r['db_angle_deg']:.4f}"] for r in self.layers]
        lines = [f"neurosim check {self.circuit}  " + "  ".join(f"{k}={v}" for k, v in self.settings.items()), "",
                 self.phase_log, "", f"update vs {self.reference}, per layer:",
                 format_table(["layer", "shape", "dW rel err", "dW angle °", "db rel err", "db angle °"], rows),
                 f"max relative error: {self.max_relative_error:.3e}"]
        for k, v in self.comparisons.items():
            lines.append(f"{k}: {v}")
        lines.append(self.verdict())
        return "\n".join(lines)


def split_options(module, options: Mapping[str, Any]) -> tuple[dict, dict]:
    """Route ``--set key=value`` options to the circuit's ``build`` or ``schedule`` by signature."""
    build_params = inspect.signature(module.build).parameters
    sched_params = inspect.signature(module.schedule).parameters
    b, s = {}, {}
    for k, v in options.items():
        if k in build_params:
            b[k] = v
        elif k in sched_params:
            s[k] = v
        else:
            raise ValueError(
                f"option {k}={v!r} is not a parameter of {module.NAME}.build {sorted(build_params)} "
                f"or {module.NAME}.schedule {sorted(sched_params)}"
            )
    return b, s


def layer_parameters(module, circuit, layer: int) -> tuple[str, str]:
    """``(weight projection, bias population)`` of layer ``layer`` (1..L) of a circuit.

    The default is the layered naming (``W{l}``, biases on ``x{l}``); a circuit module that
    names its parameters differently defines ``layer_parameters(circuit, layer)`` returning
    the same pair.
    """
    hook = getattr(module, "layer_parameters", None)
    return hook(circuit, layer) if hook is not None else (f"W{layer}", f"x{layer}")


def random_batch(sizes: Sequence[int], batch: int, loss: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``N(0, 1)`` and targets (Gaussian for MSE, one-hot for CE)."""
    x = rng.normal(size=(batch, sizes[0]))
    if loss == "ce":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=batch)]
    else:
        y = rng.normal(size=(batch, sizes[-1]))
    return x, y


def run_check(circuit_name: str, *, sizes: Sequence[int] = (20, 30, 10), activation: str = "tanh", loss: str = "mse",
              batch: int = 16, seed: int = 0, dtype: str = "float64", backend: str = "numpy",
              options: Mapping[str, Any] | None = None, comparisons: bool = True, layers: str | None = None,
              input_shape: Sequence[int] | str | None = None, tolerance: float | None = None) -> CheckReport:
    """Run one trial of ``circuit_name`` and compare its updates with backprop or the circuit's ``check_reference``.

    Parameters
    ----------
    comparisons : bool
        Add the circuit module's ``check_comparisons(report, options)`` results (where it defines
        the hook) to ``report.comparisons``; False runs the bare check (what the hook itself calls).
    layers, input_shape : str and (C, H, W), optional
        A convolutional network (``"conv:6:5:pad=2,maxpool:2,...,dense:10"`` on ``C,H,W`` input
        maps, see ``circuits._conv``) instead of ``sizes``; the reference is then backprop through
        the convolutional network (:func:`neurosim.analysis.convnet_backprop_reference`), and
        the dump holds ``x`` as ``(N, C, H, W)``, kernels ``(out, in, kh, kw)``, the feedback ``B{l}``
        in ``W{l}``'s shape and ``layers`` (the forward-order layer list, JSON).

    ``tolerance`` (relative) is what the report's verdict judges against; ``None`` uses the
    circuit's declared tolerance (:func:`declared_tolerance`), if any.

    Returns
    -------
    CheckReport
        With ``arrays`` holding ``W1..WL``, ``b1..bL`` (before the update), ``B1..BL`` where
        the circuit has feedback matrices, ``x``, ``y``, and the circuit's ``dW1..dWL``,
        ``db1..dbL`` for learning rate 1 with the loss summed over the batch.
    """
    from neurosim import circuits

    if int(batch) < 1:
        raise ValueError(f"batch={batch!r} must be >= 1")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"tolerance={tolerance!r} must be a positive relative error, e.g. 1e-8")
    module = circuits.get(circuit_name)
    build_opts, sched_opts = split_options(module, options or {})
    net = None
    if layers is not None or input_shape is not None:
        from neurosim.circuits import _conv

        if "layers" not in inspect.signature(module.build).parameters:
            raise ValueError(f"circuit {circuit_name!r} has no convolutional form (its build takes no layers=); "
                             f"circuits with one: backprop, feedback_alignment, direct_feedback_alignment, "
                             f"sign_symmetry, kolen_pollack, il, zil, fazil")
        net = _conv.conv_net(layers, input_shape, None)
        sizes = net.sizes
        build_opts = {**build_opts, "layers": net.text, "input_shape": net.input_shape}
    circuit = module.build(list(sizes), activation, loss, seed=seed, **build_opts)
    sched = module.schedule(circuit, **sched_opts)
    sim = Simulator(circuit, sched, backend=backend, dtype=dtype, seed=seed)
    L = len(sizes) - 1
    rng = np.random.default_rng(seed + 1)
    x, y = random_batch(sizes, batch, loss, rng)
    params = [layer_parameters(module, circuit, l) for l in range(1, L + 1)]
    weights = [sim.effective_weights(w).astype(np.float64) for w, _ in params]
    biases = [sim.host_biases()[b].astype(np.float64) for _, b in params]
    arrays: dict[str, np.ndarray] = {"x": x, "y": y}
    for l in range(1, L + 1):
        arrays[f"W{l}"] = weights[l - 1]
        arrays[f"b{l}"] = biases[l - 1]
    for p in circuit.projections:  # B_l, and any other feedback (direct D_l, skip R_k_l)
        if p.pathway == "feedback":
            arrays[p.name] = sim.effective_weights(p.name)
    chain = {f"W{l}" for l in range(1, L + 1)}
    extra = [p.name for p in circuit.projections if p.pathway == "feedforward" and p.plastic and p.name not in chain]
    before = {k: v.astype(np.float64) for k, v in sim.host_weights().items()}
    before_biases = {k: v.astype(np.float64) for k, v in sim.host_biases().items()}
    result = sim.run_trial({"x": x, "y": y}, learn=True)
    reference = getattr(module, "check_reference", None)
    if reference is not None:  # the circuit's own reference (circuit_contract.CheckReference)
        ref_all, ref_b = reference(circuit, sched, before, before_biases, x, y)
        ref_dW = [np.asarray(ref_all[w], dtype=np.float64) for w, _ in params]
        ref_db = [np.asarray(ref_b[b], dtype=np.float64) for _, b in params]
    elif net is not None:
        ref_dW, ref_db = convnet_backprop_reference(json.loads(net.describe_json()), net.input_shape, weights, biases,
                                                    x, y, activation, loss)
    elif extra:  # skip connections: backprop through every feedforward projection
        from .alignment import layered_backprop

        ref_all, ref_b = layered_backprop(circuit, before, {f"x{l}": b for l, b in enumerate(biases, 1)}, x, y)
        ref_dW = [ref_all[f"W{l}"] for l in range(1, L + 1)]
        ref_db = [ref_b[f"x{l}"] for l in range(1, L + 1)]
    else:
        ref_dW, ref_db = backprop_reference(weights, biases, x, y, activation, loss)
    if net is not None:
        arrays["x"] = x.reshape((len(x),) + tuple(net.input_shape))
        arrays["layers"] = np.array(net.describe_json())
        for l in range(2, L + 1):  # the feedback in W{l}'s (forward) shape: dense feedback is stored transposed
            if f"B{l}" in arrays and not circuit.projection(f"B{l}").transposed:
                arrays[f"B{l}"] = arrays[f"B{l}"].T
    settings = {"sizes": ",".join(map(str, sizes))}
    if net is not None:
        settings = {"input": ",".join(map(str, net.input_shape)), "layers": net.text}
    report = CheckReport(circuit_name, {**settings, "activation": activation, "loss": loss,
                                        "batch": batch, "seed": seed, "dtype": dtype, "backend": sim.backend.name,
                                        **{k: v for k, v in (options or {}).items()}},
                         reference=(f"{module.NAME}.check_reference" if reference is not None else
                                    "backprop through the conv net (algebraic)" if net is not None
                                    else CheckReport.reference),
                         tolerance=tolerance if tolerance is not None else declared_tolerance(circuit_name, dtype,
                                                                                              options or {}))
    for l in range(1, L + 1):
        w_name, b_name = params[l - 1]
        dW = np.asarray(result.updates.get(w_name, np.zeros_like(weights[l - 1])), dtype=np.float64)
        db = np.asarray(result.bias_updates.get(b_name, np.zeros_like(biases[l - 1])), dtype=np.float64)
        arrays[f"dW{l}"] = dW
        arrays[f"db{l}"] = db
        report.layers.append({
            "layer": l, "shape": list(dW.shape),
            "dW_rel_error": relative_error(dW, ref_dW[l - 1]), "dW_angle_deg": angle_deg(dW, ref_dW[l - 1]),
            "db_rel_error": relative_error(db, ref_db[l - 1]), "db_angle_deg": angle_deg(db, ref_db[l - 1]),
        })
    for name in extra:
        dW = np.asarray(result.updates.get(name, np.zeros_like(before[name])), dtype=np.float64)
        arrays[name] = before[name]
        arrays[f"d{name}"] = dW
        report.layers.append({
            "layer": name, "shape": list(dW.shape),
            "dW_rel_error": relative_error(dW, ref_all[name]), "dW_angle_deg": angle_deg(dW, ref_all[name]),
            "db_rel_error": 0.0, "db_angle_deg": float("nan"),
        })
    report.phase_log = sim.log.summary(tail=len(result.records))
    report.arrays = arrays
    extra_checks = getattr(module, "check_comparisons", None)
    if comparisons and extra_checks is not None:
        report.comparisons.update(extra_checks(report, dict(options or {})))
    return report
