"""Shared parts of the dynamic-inversion circuits (ALGORITHMS.md §4): loops, feedback, stability.

A *loop* inverts a block of ``k`` forward layers ``l-k+1 .. l`` (``k = 1``: sequential DI,
``k = 2``: single-loop DI). Its populations, all with time constant ``tau_loop_ms``:

* controller ``c{l}`` (``d_l`` units, leak ``alpha``): ``τ dc/dt = -alpha c + W_l ρ_top - e_l``;
* relays, one per error the loop hands down (``d_j`` units, leak 1), bottom to top:
  ``τ dρ_bottom/dt = -ρ_bottom + B c`` and ``τ dρ_j/dt = -ρ_j + W_j ρ_{j-1}`` above it.

With ``k = 1`` the relay is ``r{l}`` and the loop is ``τ dc/dt = -αc + W r - e``,
``τ dr/dt = -r + B c``, fixed point ``r* = B (W B - αI)^{-1} e`` (A4). The error handed down is
``e_j = f'(a_j) ⊙ ρ_j*`` (instantaneous error compartments with gain ``x_j``).

Names: controller ``c{l}``; relays ``r{l}`` (``k = 1``) or ``r{l}_{j}`` (``k > 1``, relay of error
``j``), each a compartment of the layer ``x_j`` whose error it carries; projections ``F{j}`` (tied
copy of ``W_j`` inside the ring) and ``B{l}`` or ``B{l}_{l-k}`` (the feedback, shape
``(d_{l-k}, d_l)``). The error ``e_l`` enters the controller as the input ``-e_l`` of the
``invert{l}`` phase, and the ``relay{l}`` phase sets each error compartment to
``f'(a_j) ⊙ ρ_j`` from its own neuron's slope and relay compartment (:class:`GatedRelay`):
one-to-one wiring, written without identity matrices.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from neurosim.model import CircuitError, Population, Projection, Tied
from neurosim.plasticity import SGD
from neurosim.schedule import Converged, Learn, Phase
from neurosim.sources import OutputError, Source, StateOf
from neurosim.stability import CycleLoop, Stage
from neurosim.units import positive_ms

from . import _mlp
from ._di_stability import LoopCheck, LoopGuard, RepairLog, RepairRecord, ssa_repair, unstable_message

__all__ = ["FEEDBACK_INITS", "LoopSpec", "plan_loops", "alpha_per_layer", "loop_of", "initial_feedback",
           "stabilise_at_build", "forward_layers", "error_populations", "loop_parts", "GatedRelay",
           "output_error_phase", "loop_phases", "chain_phase", "default_loop_dt", "check_loop_dt", "loop_guard",
           "learn_with", "ndi_feedback", "pbp_feedback", "ClosedFormFeedback", "ssa_settings", "build_loop_circuit",
           "meta_of", "build_log", "loop_schedule", "build_chain_circuit", "chain_schedule"]

FEEDBACK_INITS = ("neg_transpose", "random", "optim")
"""How a loop's feedback B starts: ``-(W_l ... W_{l-k+1})^T``, ``U(-0.5, 0.5)``, or ``U(-0.01, 0.01)`` + SSA."""


# ----------------------------------------------------------------------------------------------
# Loop plan and names
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopSpec:
    """One loop: the forward layers ``bottom+1 .. top`` it inverts.

    Attributes
    ----------
    top : int
        Layer ``l`` whose error ``e_l`` drives the controller.
    depth : int
        Number of forward layers ``k`` inside the ring; the loop hands down ``e_{l-1} .. e_{l-k}``.
    """

    top: int
    depth: int

    @property
    def bottom(self) -> int:
        """Lowest error index the loop produces (``l - k``)."""
        return self.top - self.depth

    @property
    def name(self) -> str:
        return f"loop{self.top}"

    @property
    def controller(self) -> str:
        return f"c{self.top}"

    @property
    def errors(self) -> tuple[int, ...]:
        """Error layers handed down, bottom to top."""
        return tuple(range(self.bottom, self.top))

    def relay(self, j: int) -> str:
        """Relay population of error ``j``."""
        return f"r{self.top}" if self.depth == 1 else f"r{self.top}_{j}"

    @property
    def feedback(self) -> str:
        return f"B{self.top}" if self.depth == 1 else f"B{self.top}_{self.bottom}"

    @property
    def forward(self) -> tuple[int, ...]:
        """Forward layers inside the ring, bottom to top."""
        return tuple(range(self.bottom + 1, self.top + 1))


def plan_loops(depth_L: int, block: int) -> list[LoopSpec]:
    """Loops from the output down, ``block`` layers each, producing every error ``e_{L-1} .. e_1`` once."""
    if int(block) < 1:
        raise ValueError(f"block={block!r} must be a positive number of layers per loop")
    loops, top = [], depth_L
    while top > 1:
        k = min(int(block), top - 1)
        loops.append(LoopSpec(top, k))
        top -= k
    return loops


def alpha_per_layer(alpha: float | Sequence[float], depth_L: int) -> dict[int, float]:
    """Controller leak for every layer ``2..L``: one value for all, or one per layer ``l = 2..L``."""
    if np.ndim(alpha) == 0:
        values = [float(alpha)] * (depth_L - 1)
    else:
        values = [float(a) for a in alpha]
        if len(values) != depth_L - 1:
            raise ValueError(f"alpha={list(values)} must give one leak per loop layer l = 2..{depth_L} "
                             f"({depth_L - 1} values) or a single value")
    for a in values:
        if not (np.isfinite(a) and a >= 0):
            raise ValueError(f"alpha={a!r} must be finite and >= 0 (the controller's leak)")
    return {l: a for l, a in zip(range(2, depth_L + 1), values)}


# ----------------------------------------------------------------------------------------------
# Loops as CycleLoops: spectra, feedback initialisation, build-time stability
# ----------------------------------------------------------------------------------------------


def loop_of(spec: LoopSpec, sizes: Sequence[int], get: Callable[[str], np.ndarray], alpha: float,
            tau_ms: float) -> CycleLoop:
    """The ring ``ρ_bottom -> ... -> ρ_{top-1} -> c -> ρ_bottom`` with the current weights.

    ``get(name)`` returns the current ``W_j`` (as ``"W{j}"``) and the feedback (``spec.feedback``).
    """
    stages = [Stage(spec.relay(j), sizes[j], 1.0, tau_ms) for j in spec.errors]
    stages.append(Stage(spec.controller, sizes[spec.top], alpha, tau_ms))
    mats = [get(f"W{j}") for j in spec.forward] + [get(spec.feedback)]
    names = [f"W{j}" for j in spec.forward] + [spec.feedback]
    return CycleLoop(stages, mats, names)


def forward_product(spec: LoopSpec, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """``W_top ... W_{bottom+1}``, shape ``(d_top, d_bottom)``."""
    p = None
    for j in spec.forward:
        p = weights[f"W{j}"] if p is None else weights[f"W{j}"] @ p
    return p


def check_expanding(spec: LoopSpec, sizes: Sequence[int], alpha: float) -> None:
    """Refuse ``alpha = 0`` when the controller is wider than a relay (A9)."""
    narrow = min(sizes[j] for j in spec.errors)
    d = sizes[spec.top]
    if alpha == 0 and d > narrow:
        raise CircuitError(
            f"{spec.name}: the controller c{spec.top} has {d} units but the ring narrows to {narrow}, so "
            f"W·B ({d}x{d}) has rank <= {narrow} and {d - narrow} zero eigenvalues (ALGORITHMS.md A9). With "
            f"alpha=0 the loop matrix M then has {d - narrow} eigenvalue(s) exactly 0: the controller integrates "
            f"without leak along the null space of B and the loop never settles. Use alpha > 0 (e.g. alpha=0.01; "
            f"those directions then converge at rate alpha/tau)"
        )


def initial_feedback(kind: str, spec: LoopSpec, weights: Mapping[str, np.ndarray], rng: np.random.Generator,
                     feedback_range: float) -> np.ndarray:
    """The feedback of a loop before any stabilisation: ``kind`` in :data:`FEEDBACK_INITS`."""
    p = forward_product(spec, weights)
    shape = p.T.shape
    if kind == "neg_transpose":
        return -p.T.copy()
    if kind == "random":
        return rng.uniform(-feedback_range, feedback_range, size=shape)
    if kind == "optim":
        return rng.uniform(-0.01, 0.01, size=shape)
    raise ValueError(f"feedback={kind!r} is unknown; choose one of {FEEDBACK_INITS}")


def stabilise_at_build(loops: Sequence[LoopSpec], sizes: Sequence[int], weights: dict, alphas: Mapping[int, float],
                       tau_ms: float, *, feedback: str, repair: bool, margin: float, ssa: Mapping[str, Any],
                       log: RepairLog) -> dict[str, Any]:
    """Check every loop of freshly initialised weights; optimise (``optim``) or repair B; refuse if unstable.

    ``weights`` holds ``W{j}`` and the feedback matrices and is updated in place.

    Returns
    -------
    dict
        JSON-able facts for ``circuit.meta``: per loop the spectral abscissa (1/ms) and, for
        ``optim``/repairs, what SSA did.
    """
    margin_per_ms = margin / tau_ms
    facts: dict[str, Any] = {}
    for spec in loops:
        alpha = alphas[spec.top]
        check_expanding(spec, sizes, alpha)
        loop = loop_of(spec, sizes, weights.__getitem__, alpha, tau_ms)
        entry: dict[str, Any] = {"abscissa_init_per_ms": loop.spectral_abscissa()}
        if feedback == "optim":
            res = ssa_repair(loop, spec.feedback, margin_per_ms=margin_per_ms, **ssa)
            weights[spec.feedback] = res.loop.matrix(spec.feedback)
            loop = res.loop
            entry["ssa_init"] = {"iterations": res.iterations, "abscissa_after_per_ms": res.abscissa_after}
        alpha_now = loop.spectral_abscissa()
        if not loop.is_stable(alpha_now):
            if not repair:
                raise CircuitError(unstable_message(spec.name, loop, alpha_now, repairable=True))
            res = ssa_repair(loop, spec.feedback, margin_per_ms=margin_per_ms, **ssa)
            log.add(RepairRecord(spec.name, spec.feedback, 0, 0, res.abscissa_before, res.abscissa_after,
                                 res.iterations, res.success, res.change))
            if not res.success:
                raise CircuitError(f"{spec.name}: SSA repair at build left the spectral abscissa at "
                                   f"{res.abscissa_after:.4g}/ms after {res.iterations} iterations; "
                                   f"raise ssa_max_iters or alpha")
            weights[spec.feedback] = res.loop.matrix(spec.feedback)
            loop = res.loop
            entry["build_repair"] = {"iterations": res.iterations, "abscissa_before_per_ms": res.abscissa_before,
                                     "abscissa_after_per_ms": res.abscissa_after, "change": res.change}
        entry["abscissa_per_ms"] = loop.spectral_abscissa()
        facts[spec.name] = entry
    return facts


# ----------------------------------------------------------------------------------------------
# Populations and projections
# ----------------------------------------------------------------------------------------------


def forward_layers(spec: _mlp.LayerSpec, seed: int, weight_scale: float, init_range: float | None
                   ) -> tuple[list, list, np.random.Generator]:
    """Forward weights ``U(-s, s)`` (``s = weight_scale/sqrt(fan_in)``, or ``s = init_range`` when given)."""
    rng = np.random.default_rng(seed)
    if init_range is None:
        weights, biases = _mlp.init_layers(spec, rng, weight_scale)
    else:
        if not init_range > 0:
            raise ValueError(f"init_range={init_range!r} must be > 0 (weights U(-init_range, init_range))")
        weights = [rng.uniform(-init_range, init_range, size=(spec.sizes[l], spec.sizes[l - 1]))
                   for l in range(1, spec.depth + 1)]
        biases = [np.zeros(spec.sizes[l]) for l in range(1, spec.depth + 1)]
    return weights, biases, rng


def error_populations(spec: _mlp.LayerSpec) -> list[Population]:
    """Instantaneous error compartments ``e1..eL`` of the layers (``e_L`` is clamped to ``-dℓ/da_L``)."""
    return [Population(f"e{l}", spec.sizes[l], None, "linear", compartment_of=f"x{l}", role="error")
            for l in range(1, spec.depth + 1)]


def loop_parts(loop: LoopSpec, sizes: Sequence[int], alpha: float, tau_ms: float,
               feedback: np.ndarray) -> tuple[list[Population], list[Projection]]:
    """Controller, relays and the ring's projections of one loop (see the module docstring for names)."""
    pops = [Population(loop.controller, sizes[loop.top], tau_ms, "linear", leak=alpha, role="controller")]
    pops += [Population(loop.relay(j), sizes[j], tau_ms, "linear", compartment_of=f"x{j}", role="relay")
             for j in loop.errors]
    projs = [Projection(loop.feedback, loop.controller, loop.relay(loop.bottom), feedback, pathway="feedback",
                        signal="u")]
    for j in loop.forward:
        post = loop.controller if j == loop.top else loop.relay(j)
        projs.append(Projection(f"F{j}", loop.relay(j - 1), post, Tied(f"W{j}", "identity"), pathway="feedback",
                                signal="u"))
    return pops, projs


class GatedRelay(Source):
    """``f'(a) ⊙ ρ``: a neuron's slope times the state of its relay compartment (shape ``(B, n)``).

    Sets an error compartment from the settled relay of the same neurons: local, one-to-one.

    Parameters
    ----------
    relay : str
        The relay population (a compartment of ``neuron``).
    neuron : str
        The forward population whose slope ``f'(u)`` gates it.
    """

    def __init__(self, relay: str, neuron: str):
        self.relay = relay
        self.neuron = neuron

    def evaluate(self, state, data, xp, dtype, shape, **_):
        return state.signal(self.neuron, "df") * state.signal(self.relay, "u")

    def describe(self) -> str:
        return f"df[{self.neuron}]·u[{self.relay}]"

    def needs(self) -> tuple[str, ...]:
        return (self.relay, self.neuron)


# ----------------------------------------------------------------------------------------------
# Phases
# ----------------------------------------------------------------------------------------------


def output_error_phase(spec: _mlp.LayerSpec, dt_ms: float) -> Phase:
    """Clamp ``e_L = -dℓ/da_L`` (one step; training only)."""
    L = spec.depth
    return Phase("output_error", evolve=[], projections=[], clamp={f"e{L}": OutputError(f"x{L}", spec.loss, "y")},
                 dt_ms=dt_ms, max_ms=dt_ms, until=Converged(), training=True)


def loop_phases(loop: LoopSpec, *, dt_ms: float, max_ms: float, settle: Converged | None,
                integrator: str) -> list[Phase]:
    """``invert{l}`` (relax the loop from zero until ``settle``) then ``relay{l}`` (hand the errors down)."""
    evolve = [loop.relay(j) for j in loop.errors] + [loop.controller]
    on = [loop.feedback] + [f"F{j}" for j in loop.forward]
    invert = Phase(f"invert{loop.top}", evolve=evolve, projections=on, init={n: 0 for n in evolve},
                   inputs={loop.controller: StateOf(f"e{loop.top}", "u", -1.0)}, dt_ms=dt_ms, max_ms=max_ms,
                   until=settle, integrator=integrator, training=True)
    relay = Phase(f"relay{loop.top}", evolve=[], projections=[],
                  clamp={f"e{j}": GatedRelay(loop.relay(j), f"x{j}") for j in loop.errors},
                  dt_ms=dt_ms, max_ms=dt_ms, until=Converged(), training=True)
    return [invert, relay]


def chain_phase(spec: _mlp.LayerSpec, feedback: Sequence[str], dt_ms: float) -> Phase:
    """Closed-form error chain: ``e_{l-1} = f'(a_{l-1}) ⊙ G_l e_l`` with ``e_L`` clamped (one step)."""
    L = spec.depth
    return Phase("backward", evolve=[f"e{l}" for l in range(1, L)], projections=list(feedback),
                 clamp={f"e{L}": OutputError(f"x{L}", spec.loss, "y")}, dt_ms=dt_ms, max_ms=dt_ms,
                 until=Converged(), training=True)


def default_loop_dt(loops: Sequence[LoopSpec], sizes, get, alphas, tau_ms: float, integrator: str,
                    fraction: float = 0.5) -> tuple[float, dict[str, float]]:
    """``min(tau/2, fraction * largest stable step)`` over the loops, and each loop's largest stable step (ms)."""
    limits = {lp.name: loop_of(lp, sizes, get, alphas[lp.top], tau_ms).max_stable_dt(integrator) for lp in loops}
    dt = min([0.5 * tau_ms] + [fraction * v for v in limits.values()])
    return dt, limits


def check_loop_dt(loops: Sequence[LoopSpec], sizes, get, alphas, tau_ms: float, dt_ms: float,
                  integrator: str) -> None:
    """Refuse a loop step beyond the integrator's bound ``max|R(dt λ)| < 1`` on the loop matrix."""
    from neurosim.integrate import StabilityError

    for lp in loops:
        loop = loop_of(lp, sizes, get, alphas[lp.top], tau_ms)
        growth = loop.step_growth(dt_ms, integrator)
        if growth >= 1.0:
            limit = loop.max_stable_dt(integrator)
            raise StabilityError(
                f"{lp.name}: loop_dt_ms={dt_ms:g} is beyond the {integrator} bound of the loop: "
                f"max|R(dt·λ)| = {growth:.4g} >= 1 over the eigenvalues λ of M (spectral abscissa "
                f"{loop.spectral_abscissa():.4g}/ms). The leak-only check of the phase passes; the loop's "
                f"own bound is dt < {limit:.4g} ms. Use loop_dt_ms <= {limit:.4g}, loop_integrator='rk4', "
                f"or smaller weights"
            )


def loop_guard(loops: Sequence[LoopSpec], sizes, alphas, tau_ms: float, *, dt_ms: float | None, integrator: str,
               repair: bool, margin: float, ssa: Mapping[str, Any], log: RepairLog, every: int) -> LoopGuard:
    """The after-update hook that checks (and repairs) every loop of a DI circuit."""
    checks = [
        LoopCheck(lp.name, (lambda get, lp=lp: loop_of(lp, sizes, get, alphas[lp.top], tau_ms)), lp.feedback,
                  dt_ms, integrator)
        for lp in loops
    ]
    return LoopGuard(checks, margin_per_ms=margin / tau_ms, repair=repair, log=log, every=every, ssa=ssa)


def learn_with(spec: _mlp.LayerSpec, optimizer: SGD, after: Sequence[Callable]) -> Learn:
    """The usual ``ΔW_l = e_l r_{l-1}^T``, ``Δb_l = Σ e_l`` phase with after-update hooks."""
    return replace(_mlp.learn_phase(spec, optimizer), after=tuple(after))


# ----------------------------------------------------------------------------------------------
# Closed-form feedback (NDI, PBP): recomputed after every update
# ----------------------------------------------------------------------------------------------


def ndi_feedback(w: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """``G = B (W B - αI)^{-1}`` (contracting/square ``W``) or ``(B W - αI)^{-1} B`` (expanding), ``(d_{l-1}, d_l)``.

    Both are the fixed-point map ``e -> r*`` of the loop; they are equal by the push-through
    identity (A9), and the second solves the smaller system when ``d_l > d_{l-1}``.
    """
    d_out, d_in = w.shape
    if d_out <= d_in:
        return np.linalg.solve((w @ b - alpha * np.eye(d_out)).T, b.T).T
    return np.linalg.solve(b @ w - alpha * np.eye(d_in), b)


def pbp_feedback(w: np.ndarray) -> np.ndarray:
    """The Moore–Penrose pseudo-inverse ``W^+`` (SVD, numpy's default cut-off), ``(d_{l-1}, d_l)``."""
    return np.linalg.pinv(w)


class ClosedFormFeedback:
    """After-update hook: recompute feedback matrices that are closed-form functions of the weights.

    Parameters
    ----------
    targets : mapping projection -> callable(get) -> array
        ``get(name)`` returns current effective weights; the result replaces the projection's weights.
    description : str
    """

    def __init__(self, targets: Mapping[str, Callable[[Callable[[str], np.ndarray]], np.ndarray]], description: str):
        self.targets = dict(targets)
        self.description = description

    def describe(self) -> str:
        return self.description

    def compute(self, get: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
        return {name: fn(get) for name, fn in self.targets.items()}

    def __call__(self, sim) -> None:
        for name, value in self.compute(sim.effective_weights).items():
            sim.weights[name] = sim.backend.asarray(value)


def loop_time(tau_ms: float, tau_loop_ms: float | None) -> float:
    """The loop's time constant (default: the forward ``tau_ms``)."""
    return tau_ms if tau_loop_ms is None else positive_ms(tau_loop_ms, "tau_loop_ms")


# ----------------------------------------------------------------------------------------------
# Whole circuits: simulated loops (DI, SLDI) and closed-form chains (NDI, PBP)
# ----------------------------------------------------------------------------------------------


def ssa_settings(ssa_lr: float, ssa_min_iters: int, ssa_max_iters: int) -> dict[str, Any]:
    """Validated keyword arguments of :func:`~neurosim.circuits._di_stability.ssa_repair`.

    The authors' regressions use 0.5 and 2000.
    """
    if not ssa_lr > 0 or int(ssa_min_iters) < 0 or int(ssa_max_iters) < max(1, int(ssa_min_iters)):
        raise ValueError(f"ssa_lr={ssa_lr!r}, ssa_min_iters={ssa_min_iters!r}, ssa_max_iters={ssa_max_iters!r}: "
                         f"need lr > 0 and 0 <= min_iters <= max_iters, max_iters >= 1")
    return {"lr": float(ssa_lr), "min_iters": int(ssa_min_iters), "max_iters": int(ssa_max_iters)}


def build_loop_circuit(name: str, block: int, sizes: Sequence[int], activation: str, loss: str, *, seed: int,
                       alpha, feedback: str, repair: bool, tau_ms: float, tau_loop_ms: float | None,
                       weight_scale: float, init_range: float | None, feedback_range: float,
                       repair_margin: float, ssa_lr: float, ssa_min_iters: int, ssa_max_iters: int):
    """A layered circuit whose errors are handed down by simulated loops of ``block`` layers.

    See :mod:`circuits.dynamic_inversion` for the parameters. Loops are checked (and, with
    ``repair``, repaired) before the circuit is built; the facts go into ``circuit.meta``.
    """
    from neurosim.model import Circuit

    spec = _mlp.layer_spec(sizes, activation, loss, tau_ms)
    tau_loop = loop_time(spec.tau_ms, tau_loop_ms)
    if feedback not in FEEDBACK_INITS:
        raise ValueError(f"feedback={feedback!r} is unknown; choose one of {FEEDBACK_INITS}")
    if not repair_margin > 0:
        raise ValueError(f"repair_margin={repair_margin!r} must be > 0 (in units of 1/tau_loop)")
    ssa = ssa_settings(ssa_lr, ssa_min_iters, ssa_max_iters)
    alphas = alpha_per_layer(alpha, spec.depth)
    w_list, biases, rng = forward_layers(spec, seed, weight_scale, init_range)
    weights = {f"W{l}": w for l, w in enumerate(w_list, start=1)}
    loops = plan_loops(spec.depth, block)
    for lp in loops:
        weights[lp.feedback] = initial_feedback(feedback, lp, weights, rng, feedback_range)
    log = RepairLog()
    facts = stabilise_at_build(loops, spec.sizes, weights, alphas, tau_loop, feedback=feedback, repair=repair,
                               margin=repair_margin, ssa=ssa, log=log)
    pops = _mlp.forward_populations(spec, biases) + error_populations(spec)
    projs = _mlp.forward_projections(spec, w_list)
    for lp in loops:
        p, q = loop_parts(lp, spec.sizes, alphas[lp.top], tau_loop, weights[lp.feedback])
        pops += p
        projs += q
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed, "dale": None,
            "block": block, "alpha": {str(k): v for k, v in alphas.items()}, "tau_loop_ms": tau_loop,
            "feedback": feedback, "repair": bool(repair), "repair_margin": repair_margin, "ssa": ssa,
            "loops": facts, "build_repairs": [r.as_dict() for r in log.records]}
    return Circuit(pops, projs, name=name, meta=meta)


def meta_of(circuit) -> tuple[_mlp.LayerSpec, dict[int, float], float]:
    """Layer spec, controller leaks per layer and loop time constant of a DI-family circuit."""
    m = circuit.meta
    spec = _mlp.layer_spec(m["sizes"], m["activation"], m["loss"], circuit.population("x0").tau_ms)
    alphas = {int(k): float(v) for k, v in m["alpha"].items()}
    return spec, alphas, float(m.get("tau_loop_ms", spec.tau_ms))


def build_log(circuit) -> RepairLog:
    """A repair log that starts with the circuit's build-time repairs."""
    log = RepairLog()
    for rec in circuit.meta.get("build_repairs", []):
        log.add(RepairRecord(**rec))
    return log


def loop_schedule(circuit, *, dt_ms, settle, loop_dt_ms, loop_integrator, loop_max_ms, loop_settle, lr, momentum,
                  weight_decay, repair, check_every):
    """``forward -> output_error -> (invert{l} -> relay{l}) per loop -> learn`` with the loop guard."""
    from neurosim.schedule import Schedule

    spec, alphas, tau_loop = meta_of(circuit)
    m = circuit.meta
    loops = plan_loops(spec.depth, int(m["block"]))
    dt = spec.tau_ms if dt_ms is None else positive_ms(dt_ms, "dt_ms")
    get = lambda n: circuit.projection(n).weights  # noqa: E731  (initial weights: W_j and B are never tied)
    if loop_dt_ms is None:
        loop_dt, _ = default_loop_dt(loops, spec.sizes, get, alphas, tau_loop, loop_integrator)
    else:
        loop_dt = positive_ms(loop_dt_ms, "loop_dt_ms")
    check_loop_dt(loops, spec.sizes, get, alphas, tau_loop, loop_dt, loop_integrator)
    max_ms = 1000.0 * tau_loop if loop_max_ms is None else positive_ms(loop_max_ms, "loop_max_ms")
    max_ms = max(max_ms, loop_dt)
    settle_loop = loop_settle or Converged(rtol=1e-9, atol=1e-12, window=2)
    phases = [_mlp.forward_phase(spec, dt, settle or _mlp.default_settle()), output_error_phase(spec, dt)]
    for lp in loops:
        phases += loop_phases(lp, dt_ms=loop_dt, max_ms=max_ms, settle=settle_loop, integrator=loop_integrator)
    repair = bool(m["repair"]) if repair is None else bool(repair)
    guard = loop_guard(loops, spec.sizes, alphas, tau_loop, dt_ms=loop_dt, integrator=loop_integrator, repair=repair,
                       margin=float(m["repair_margin"]), ssa=m["ssa"], log=build_log(circuit), every=check_every)
    phases.append(learn_with(spec, SGD(lr=lr, momentum=momentum, weight_decay=weight_decay), [guard]))
    return Schedule(circuit, phases, readout=f"x{spec.depth}", loss=spec.loss)


def chain_projections(spec: _mlp.LayerSpec, feedback: Mapping[int, np.ndarray], prefix: str) -> list[Projection]:
    """Fixed feedback ``{prefix}{l}: e_l -> e_{l-1}`` (shape ``(d_{l-1}, d_l)``, gain ``x_{l-1}``), ``l = 2..L``."""
    return [Projection(f"{prefix}{l}", f"e{l}", f"e{l - 1}", feedback[l], pathway="feedback", signal="u",
                       gain=f"x{l - 1}") for l in range(2, spec.depth + 1)]


def build_chain_circuit(name: str, spec: _mlp.LayerSpec, w_list: Sequence[np.ndarray], biases, *,
                        feedback: Mapping[int, np.ndarray], prefix: str, stored: Mapping[int, np.ndarray] | None = None,
                        meta: Mapping[str, Any]):
    """Forward layers, instantaneous error compartments and one fixed feedback matrix per layer.

    ``stored`` adds the loop feedback ``B{l}`` as projections that no phase switches on
    (they hold ``B`` for the closed form and for ``--dump``).
    """
    from neurosim.model import Circuit

    pops = _mlp.forward_populations(spec, biases) + error_populations(spec)
    projs = _mlp.forward_projections(spec, w_list) + chain_projections(spec, feedback, prefix)
    for l, b in (stored or {}).items():
        projs.append(Projection(f"B{l}", f"e{l}", f"e{l - 1}", b, pathway="feedback", signal="u"))
    return Circuit(pops, projs, name=name, meta={"sizes": list(spec.sizes), "activation": spec.activation,
                                                  "loss": spec.loss, "dale": None, **meta})


def chain_schedule(circuit, prefix: str, *, dt_ms, settle, lr, momentum, weight_decay, after: Sequence[Callable]):
    """``forward -> backward (closed-form chain, one step) -> learn`` with after-update hooks."""
    from neurosim.schedule import Schedule

    m = circuit.meta
    spec = _mlp.layer_spec(m["sizes"], m["activation"], m["loss"], circuit.population("x0").tau_ms)
    dt = spec.tau_ms if dt_ms is None else positive_ms(dt_ms, "dt_ms")
    phases = [_mlp.forward_phase(spec, dt, settle or _mlp.default_settle()),
              chain_phase(spec, [f"{prefix}{l}" for l in range(2, spec.depth + 1)], dt),
              learn_with(spec, SGD(lr=lr, momentum=momentum, weight_decay=weight_decay), after)]
    return Schedule(circuit, phases, readout=f"x{spec.depth}", loss=spec.loss)
