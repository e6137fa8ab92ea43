"""Deep Feedback Control (Meulemans et al. 2021, NeurIPS, "Credit assignment in neural networks through
deep feedback control"; Meulemans et al. 2022, "Minimizing control for credit assignment with strong
feedback").

Every layer ``l = 1..L`` has a soma ``v_l`` (state of ``x_l``), a basal compartment ``b_l`` (the
feedforward drive ``v_l^ff = W_l r_{l-1} + b_l``) and an apical compartment ``a_l`` (the feedback
``Q_l u``); the output is linear (``r_L = v_L``, the readout):

``τ_v dv_l/dt = −v_l + v_l^ff + a_l``,  ``r_l = φ(v_l)``.

A leaky PI controller with gains ``k_p`` and ``α`` (time constant ``τ_u``) drives every layer
towards the output target ``v_L* = v_L^- − λ ∂ℓ/∂v_L`` (``v_L^-`` the feedforward output, ``λ`` the
target step):

``e = v_L* − v_L``,  ``τ_u du_int/dt = e − α u``,  ``u = u_int + k_p e``.

At the controlled steady state ``e = α u``; linearised, ``u = (J Q̄ + αI)⁻¹ δ λ`` with
``δ = −∂ℓ/∂v_L`` and ``J`` the Jacobian of the output with respect to all layers' pre-activations.
Learning uses the steady state (the authors' "DFC-SS" update, their ``nonlinear_difference`` rule)

``ΔW_l = (φ(v_l) − φ(v_l^ff)) r_{l-1}ᵀ / λ``,  ``Δb_l = φ(v_l) − φ(v_l^ff)`` (over ``λ``),

soma minus basal compartment of the postsynaptic neuron times the presynaptic rate. When ``Q̄``
satisfies the column-space condition ``Q̄ = Jᵀ M`` and ``α → 0``, ``λ → 0``, this is the minimum-norm
Gauss–Newton update ``D_l [Jᵀ(JJᵀ)⁻¹δ]_l r_{l-1}ᵀ`` (their Theorem 3): the reference of
``neurosim check dfc`` (:mod:`circuits._dfc_reference`).

Feedback (``build(feedback=...)``):

``"direct"``
    The authors' architecture: plastic ``Q_l`` (d_l, d_L) from the controller to every apical
    compartment, initialised to the product of the forward weights ``Q_l = W_{l+1}ᵀ..W_Lᵀ``
    (``Q_L = I``; their ``weight_product``), learned in a separate noise phase by their rule
    ``ΔQ_l = −(1/σ²) a_l uᵀ − β Q_l`` (apical compartment times control signal; ``β`` is the
    optimiser's weight decay), which drives ``Q̄`` towards the column space of ``Jᵀ``.
``"jacobian"``
    ``Q̄ = J(v)ᵀ`` computed by a chain of apical compartments ``a_L = u``,
    ``a_l = φ'(v_l) ⊙ W_{l+1}ᵀ a_{l+1}`` (tied transposes: weight transport). The column-space
    condition then holds exactly for every sample, which no single plastic ``Q`` can do for a batch
    of a non-linear network: the configuration in which the circuit must reproduce the
    Gauss–Newton update. It is the default so that ``neurosim check dfc`` tests exactly the
    statement of the theorem; training scenarios use ``feedback="direct"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from neurosim.model import Circuit, Population, Projection, Tied
from neurosim.plasticity import SGD, Adam, OuterProduct, Rule, SynapseView
from neurosim.schedule import Converged, Learn, Phase, Schedule
from neurosim.sources import Constant, GaussianNoise, OutputError, StateOf, Zero
from neurosim.units import positive_ms

from . import _dfc_reference, _mlp

NAME = "dfc"
SUMMARY = "deep feedback control: a PI controller drives all layers to the output target; learn from the steady state"

__all__ = ["NAME", "SUMMARY", "FEEDBACKS", "PAPER", "build", "schedule", "layer_parameters", "check_reference",
           "check_comparisons", "alpha_scaling", "SomaMinusBasal", "SomaMinusBasalBias", "feedback_matrices"]

FEEDBACKS = ("jacobian", "direct")
"""Feedback pathways: ``Q̄ = J(v)ᵀ`` by tied transposes, or the authors' plastic direct ``Q_l``."""

PAPER = {"k_p": 2.0, "alpha": 0.0013890445062125412, "target_step": 0.07794471150634391, "dt_ms": 0.02,
         "steps": 1000, "tau_ratio": 0.2, "lr": 9.265965477237583e-05, "adam_betas": (0.99, 0.99),
         "adam_eps": 9.446010081075931e-08, "batch_size": 128, "epochs": 100, "sigma_fb": 0.001524181852173024,
         "lr_fb": 0.0005265408146208675, "feedback_wd": 0.001, "hidden": (256, 256, 256)}
"""The authors' MNIST DFC setting (``configs/configs_mnist/mnist_dfc.py`` of their repository
meulemansalex/deep_feedback_control): times in units of the controller time constant ``τ_u``."""


def build(sizes: Sequence[int], activation: str = "tanh", loss: str = "mse", *, seed: int = 0,
          feedback: str = "jacobian", k_p: float = PAPER["k_p"], alpha: float = PAPER["alpha"],
          target_step: float = 1e-3, tau_u_ms: float = 1.0, tau_v_ms: float = 0.2, weight_scale: float = 1.0,
          weight_init: str = "uniform") -> Circuit:
    """Build the DFC network and its controller.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``d_0 .. d_L`` (``L >= 1``); the output ``x_L`` is linear.
    activation : str
        ``φ`` of the hidden layers.
    loss : {"mse", "ce"}
        Loss of the output pre-activation ``v_L`` (logits for ``ce``); sets the output target.
    seed : int
        Seeds the forward weights (``_mlp.init_layers``: the draw of every layered circuit).
    feedback : {"jacobian", "direct"}
        See the module docstring.
    k_p : float
        Proportional gain (>= 0, dimensionless; the authors' 2).
    alpha : float
        Controller leak ``α`` (>= 0; the authors' 1.39e-3). ``α = 0`` is pure integral control.
    target_step : float
        ``λ > 0``: the output target is ``v_L^- + λ δ``. The rules divide by ``λ``, so the update
        estimates the Gauss–Newton direction per unit step (error ``O(λ)``; the authors' 0.078).
    tau_u_ms, tau_v_ms : float
        Controller and neuron time constants in ms (the authors' ratio ``τ_v/τ_u = 0.2``).
    weight_scale : float
        Initial weights ``U(-s, s)`` (or ``N(0, s²)``), ``s = weight_scale/sqrt(fan_in)``.
    weight_init : {"uniform", "gaussian"}

    Returns
    -------
    Circuit
        Populations ``x0..xL`` (somata), ``b1..bL`` (basal, biases), ``a1..aL`` (apical),
        controller ``e`` (error), ``ui`` (integral part, leak ``α``), ``u`` (control signal),
        ``ff`` and ``g`` (the feedforward output and ``λδ``, compartments of ``e``); projections
        ``W1..WL`` (plastic), ``S1..SL`` (basal → soma), ``A1..AL`` (apical → soma), the
        controller's ``Eff``, ``Eg``, ``Eout``, ``Ei``, ``Ui``, ``Up``, and ``Q1..QL`` (direct,
        plastic) or ``QL`` + ``J1..J{L-1}`` (Jacobian chain).
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback={feedback!r} is unknown; choose one of {FEEDBACKS}")
    for name, value in (("k_p", k_p), ("alpha", alpha)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value!r} must be finite and >= 0, e.g. {name}={PAPER[name]:g}")
    if alpha * k_p >= 1.0:
        raise ValueError(f"alpha*k_p={alpha * k_p:g} must be < 1 (the integral part sees (1 - α k_p) e); "
                         f"lower alpha or k_p")
    if not (np.isfinite(target_step) and target_step > 0):
        raise ValueError(f"target_step={target_step!r} must be finite and > 0, e.g. 1e-3 (the authors' 0.078)")
    if not (np.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"weight_scale={weight_scale!r} must be finite and > 0, e.g. 1.0")
    tau_u = positive_ms(tau_u_ms, "tau_u_ms")
    spec = _mlp.layer_spec(sizes, activation, loss, positive_ms(tau_v_ms, "tau_v_ms"))
    rng = np.random.default_rng(seed)
    weights, biases = _mlp.init_layers(spec, rng, weight_scale, weight_init)
    L, tau_v, n_out = spec.depth, spec.tau_ms, spec.sizes[-1]
    pops = [Population("x0", spec.sizes[0], tau_v, "linear", role="input")]
    projs: list[Projection] = []
    for l in range(1, L + 1):
        n, act = spec.sizes[l], activation if l < L else "linear"
        pops += [
            Population(f"x{l}", n, tau_v, act, role="output" if l == L else "hidden"),
            Population(f"b{l}", n, None, act, bias=biases[l - 1], compartment_of=f"x{l}", role="basal"),
            Population(f"a{l}", n, None, "linear", compartment_of=f"x{l}", role="apical"),
        ]
        projs += [
            Projection(f"W{l}", f"x{l - 1}", f"b{l}", weights[l - 1], pathway="feedforward", plastic=True),
            Projection(f"S{l}", f"b{l}", f"x{l}", np.eye(n), pathway="feedforward", signal="u"),
            Projection(f"A{l}", f"a{l}", f"x{l}", np.eye(n), pathway="feedback", signal="u"),
        ]
    eye = np.eye(n_out)
    pops += [
        Population("e", n_out, None, "linear", role="controller error"),
        Population("ff", n_out, tau_u, "linear", compartment_of="e", role="feedforward output"),
        Population("g", n_out, tau_u, "linear", compartment_of="e", role="target step λδ"),
        Population("ui", n_out, tau_u, "linear", leak=float(alpha), role="controller integral"),
        Population("u", n_out, None, "linear", role="control signal"),
    ]
    projs += [
        Projection("Eff", "ff", "e", eye, pathway="feedback", signal="u"),
        Projection("Eg", "g", "e", eye, pathway="feedback", signal="u"),
        Projection("Eout", f"x{L}", "e", -eye, pathway="feedback", signal="u"),
        Projection("Ei", "e", "ui", (1.0 - alpha * k_p) * eye, pathway="feedback", signal="u"),
        Projection("Ui", "ui", "u", eye, pathway="feedback", signal="u"),
        Projection("Up", "e", "u", k_p * eye, pathway="feedback", signal="u"),
    ]
    if feedback == "direct":
        for l, q in enumerate(_weight_product(weights), start=1):
            projs.append(Projection(f"Q{l}", "u", f"a{l}", q, pathway="feedback", signal="u", plastic=True))
    else:
        projs.append(Projection(f"Q{L}", "u", f"a{L}", eye, pathway="feedback", signal="u"))
        for l in range(1, L):
            projs.append(Projection(f"J{l}", f"a{l + 1}", f"a{l}", Tied(f"W{l + 1}", "transpose"), pathway="feedback",
                                    signal="u", gain=f"x{l}"))
    meta = {"sizes": list(spec.sizes), "activation": activation, "loss": loss, "seed": seed, "dale": None,
            "feedback": feedback, "k_p": float(k_p), "alpha": float(alpha), "target_step": float(target_step),
            "tau_u_ms": tau_u, "tau_v_ms": tau_v, "weight_scale": float(weight_scale)}
    return Circuit(pops, projs, name=NAME, meta=meta)


def _weight_product(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``Q_l = W_{l+1}ᵀ W_{l+2}ᵀ .. W_Lᵀ`` (d_l, d_L), ``Q_L = I`` (the authors' ``weight_product``)."""
    L = len(weights)
    qs = [np.eye(weights[-1].shape[0])]
    for l in range(L - 1, 0, -1):
        qs.insert(0, weights[l].T @ qs[0])
    return qs


def layer_parameters(circuit: Circuit, layer: int) -> tuple[str, str]:
    """``(weight projection, bias population)`` of layer ``layer``: the bias lives on the basal compartment."""
    return f"W{layer}", f"b{layer}"


def feedback_matrices(circuit: Circuit, weights: dict) -> list[np.ndarray]:
    """The direct feedback matrices ``Q_1..Q_L`` from a weight dict (``feedback="direct"`` only)."""
    if circuit.meta.get("feedback") != "direct":
        raise ValueError("feedback_matrices: the circuit was built with feedback='jacobian' (no plastic Q); "
                         "build it with feedback='direct'")
    return [np.asarray(weights[f"Q{l}"]) for l in range(1, len(circuit.meta["sizes"]))]


@dataclass(frozen=True)
class SomaMinusBasal(Rule):
    """``ΔW = scale · (φ(v) − φ(v^ff))ᵀ r_pre``: soma minus basal rate of the post neuron, times the pre rate.

    Parameters
    ----------
    soma, basal : str
        The postsynaptic soma ``x_l`` and its basal compartment ``b_l``.
    pre : str
        The presynaptic population (its rate).
    scale : float
        ``1/λ``.
    """

    soma: str
    basal: str
    pre: str
    scale: float

    def delta(self, view: SynapseView):
        post = view.post_signal(self.soma, "r") - view.post_signal(self.basal, "r")
        return self.scale * (post.T @ view.pre_signal(self.pre, "r"))

    def describe(self) -> str:
        return f"{self.scale:g}·(r[{self.soma}] − r[{self.basal}])ᵀ·r[{self.pre}]"


@dataclass(frozen=True)
class SomaMinusBasalBias(Rule):
    """``Δb = scale · Σ_batch (φ(v) − φ(v^ff))``."""

    soma: str
    basal: str
    scale: float

    def delta(self, view: SynapseView):
        return self.scale * (view.post_signal(self.soma, "r") - view.post_signal(self.basal, "r")).sum(axis=0)

    def describe(self) -> str:
        return f"{self.scale:g}·Σ_batch (r[{self.soma}] − r[{self.basal}])"


def default_settle() -> Converged:
    """Steady-state criterion of the checks: ``max |τ dv/dt| <= 1e-13 + 1e-11·max |v|`` (float64 round-off)."""
    return Converged(rtol=1e-11, atol=1e-13, window=2)


def schedule(circuit: Circuit, *, dt_ms: float = PAPER["dt_ms"], steps: int = 20000,
             settle: Converged | None | str = "default", forward_settle: Converged | None = None,
             forward_dt_ms: float | None = None, forward_steps: int = 20000, sleep_steps: int | None = None,
             optimizer: SGD | Adam | None = None, lr: float = 0.01,
             learn_feedback: bool | None = None, sigma: float = 0.1, feedback_optimizer: SGD | Adam | None = None,
             lr_feedback: float = 1e-3, feedback_decay: float = 0.0) -> Schedule:
    """Phases ``forward`` → ``control`` → ``learn`` [→ ``sleep_forward`` → ``sleep`` → ``learn_feedback``].

    Parameters
    ----------
    circuit : Circuit
        Built by :func:`build`.
    dt_ms : float
        Euler step of every phase in ms (the authors' 0.02 ``τ_u``).
    steps : int
        Longest controlled relaxation in steps (default 20000, stopped early by ``settle``: the
        steady state the theory speaks of; the authors run a fixed ``t_max`` = 1000 steps, which
        the MNIST scenario uses).
    settle : Converged, None or "default"
        Stop the controlled relaxation once at its steady state: ``"default"`` is
        :func:`default_settle` (float64 round-off, as the checks need); ``None`` runs all ``steps``
        like the authors.
    forward_settle : Converged, optional
        Stopping rule of the feedforward relaxations (default :func:`default_settle`).
    forward_dt_ms : float, optional
        Euler step of the feedforward relaxations (default ``τ_v``: forward Euler at ``dt = τ_v``
        sets each soma to its drive, so ``L + 1`` steps reach the feedforward pass exactly).
    forward_steps : int
        Longest feedforward relaxation in steps.
    sleep_steps : int, optional
        Longest relaxation of the noise phase in steps (default ``steps``).
    optimizer : SGD or Adam, optional
        Optimiser of the forward weights and biases (default ``SGD(lr)``; the authors use Adam,
        ``lr`` 9.27e-5, betas 0.99, see :data:`PAPER`).
    lr : float
        Learning rate of the default SGD.
    learn_feedback : bool, optional
        Add the noise phase and the feedback rule (default: when ``feedback="direct"``).
    sigma : float
        Standard deviation of the apical noise of the noise phase (state units; > 0).
    feedback_optimizer : SGD or Adam, optional
        Optimiser of ``Q`` (default ``SGD(lr_feedback, weight_decay=feedback_decay)``).
    lr_feedback, feedback_decay : float
        Learning rate and weight decay ``β`` of the default feedback optimiser.

    Notes
    -----
    The noise of the ``sleep`` phase is one draw per sample held for the phase (the engine's
    :class:`~neurosim.sources.GaussianNoise` is evaluated once at a phase start), not the
    authors' white noise; the feedback rule is applied to the controlled steady state of that
    perturbation, and the batch plays the role of their average over time.
    """
    m = circuit.meta
    if circuit.name != NAME or "k_p" not in m:
        raise ValueError(f"dfc.schedule: circuit {circuit.name!r} was not built by circuits.dfc.build; "
                         f"build it with dfc.build(sizes, ...)")
    sleep_steps = int(steps) if sleep_steps is None else int(sleep_steps)
    if min(int(steps), int(forward_steps), sleep_steps) < 1:
        raise ValueError(f"steps={steps!r}, forward_steps={forward_steps!r} and sleep_steps={sleep_steps!r} must be "
                         f"positive numbers of steps")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma={sigma!r} must be finite and > 0, e.g. 0.1")
    dt = positive_ms(dt_ms, "dt_ms")
    forward_dt = float(m["tau_v_ms"]) if forward_dt_ms is None else positive_ms(forward_dt_ms, "forward_dt_ms")
    L, loss, lam = len(m["sizes"]) - 1, m["loss"], float(m["target_step"])
    direct = m["feedback"] == "direct"
    learn_feedback = direct if learn_feedback is None else bool(learn_feedback)
    if learn_feedback and not direct:
        raise ValueError("learn_feedback=True needs plastic feedback: build with feedback='direct'")
    settle = default_settle() if settle == "default" else settle
    forward_settle = forward_settle or default_settle()
    layers = range(1, L + 1)
    somata, basal, apical = [f"x{l}" for l in layers], [f"b{l}" for l in layers], [f"a{l}" for l in layers]
    forward_net = [f"W{l}" for l in layers] + [f"S{l}" for l in layers]
    feedback_net = [f"A{l}" for l in layers] + ["Eff", "Eg", "Eout", "Ei", "Ui", "Up"]
    feedback_net += [f"Q{l}" for l in layers] if direct else [f"Q{L}"] + [f"J{l}" for l in range(1, L)]
    controlled = dict(evolve=somata + basal + apical + ["e", "ui", "u"], projections=forward_net + feedback_net,
                      dt_ms=dt, max_ms=dt * int(steps), until=settle, training=True)
    forward = dict(evolve=somata + basal, projections=forward_net, clamp={"x0": "x"}, dt_ms=forward_dt,
                   max_ms=forward_dt * int(forward_steps), until=forward_settle)
    zero_controller = {"ui": Zero()}
    phases: list = [
        Phase("forward", **forward),
        Phase("control", init=zero_controller,
              clamp={"x0": "x", "ff": StateOf(f"x{L}"), "g": OutputError(f"x{L}", loss, precision=lam)},
              **controlled),
    ]
    rules = {f"W{l}": SomaMinusBasal(f"x{l}", f"b{l}", f"x{l - 1}", 1.0 / lam) for l in layers}
    bias_rules = {f"b{l}": SomaMinusBasalBias(f"x{l}", f"b{l}", 1.0 / lam) for l in layers}
    phases.append(Learn(rules=rules, bias_rules=bias_rules, optimizer=optimizer or SGD(lr=lr)))
    if learn_feedback:
        n_out = m["sizes"][-1]
        phases += [
            Phase("sleep_forward", training=True, **forward),
            Phase("sleep", init=zero_controller,
                  clamp={"x0": "x", "ff": StateOf(f"x{L}"), "g": Constant(np.zeros(n_out))},
                  inputs={a: GaussianNoise(sigma) for a in apical}, **(controlled | {"max_ms": dt * sleep_steps})),
            Learn(name="learn_feedback",
                  rules={f"Q{l}": OuterProduct(post=(f"a{l}", "u"), pre=("u", "u"), sign=-1.0 / sigma ** 2)
                         for l in layers},
                  optimizer=feedback_optimizer or SGD(lr=lr_feedback, weight_decay=feedback_decay)),
        ]
    return Schedule(circuit, phases, readout=f"x{L}", loss=loss)


def check_reference(circuit: Circuit, schedule: Schedule, weights: dict, biases: dict, x: np.ndarray,
                    y: np.ndarray) -> tuple[dict, dict]:
    """``neurosim check`` hook: the minimum-norm Gauss–Newton update (:mod:`circuits._dfc_reference`).

    ``D_l [Jᵀ(JJᵀ)⁻¹δ]_l r_{l-1}ᵀ`` per unit target step, summed over the batch, at the
    feedforward state; DFC reaches it as ``α → 0`` and ``λ → 0`` when ``Q̄`` lies in the column
    space of ``Jᵀ`` (exactly so with ``feedback="jacobian"``).
    """
    m = circuit.meta
    L = len(m["sizes"]) - 1
    dW, db = _dfc_reference.gauss_newton_update(x, y, [weights[f"W{l}"] for l in range(1, L + 1)],
                                                [biases[f"b{l}"] for l in range(1, L + 1)], m["activation"],
                                                m["loss"])
    return {f"W{l}": dW[l - 1] for l in range(1, L + 1)}, {f"b{l}": db[l - 1] for l in range(1, L + 1)}


def check_comparisons(report, options: dict) -> dict:
    """``neurosim check`` hook: the error against Gauss–Newton as ``α`` and ``λ`` shrink, and the
    error of the authors' direct feedback at its initialisation (no column-space condition).

    Reruns the check's trial (same sizes, batch, seed, backend, dtype) with ``feedback="jacobian"``
    at ``α = 1e-1 .. 1e-4`` (``λ = 1e-6``), at ``λ = 1e-1 .. 1e-4`` (``α = 0``), and with
    ``feedback="direct"`` at the check's ``α``, ``λ``.
    """
    s = report.settings
    common = dict(sizes=[int(v) for v in str(s["sizes"]).split(",")], activation=s["activation"], loss=s["loss"],
                  batch=int(s["batch"]), seed=int(s["seed"]), dtype=s["dtype"], backend=s["backend"])
    base = {k: v for k, v in options.items() if k not in ("alpha", "target_step", "feedback")}
    out = {}
    alphas = alpha_scaling(options={**base, "feedback": "jacobian", "target_step": 1e-6}, **common)
    out["alpha_scaling_jacobian_feedback"] = alphas
    steps = alpha_scaling(values=(1e-1, 1e-2, 1e-3, 1e-4), parameter="target_step",
                          options={**base, "feedback": "jacobian", "alpha": 0.0}, **common)
    out["target_step_scaling_jacobian_feedback_alpha0"] = steps
    from neurosim.check import run_check

    direct = run_check(NAME, options={**options, "feedback": "direct"}, comparisons=False, **common)
    out["direct_feedback_weight_product_init_max_relative_error"] = direct.max_relative_error
    return out


def alpha_scaling(values: Sequence[float] = (1e-1, 1e-2, 1e-3, 1e-4), parameter: str = "alpha",
                  **check_args) -> dict:
    """The check's error against Gauss–Newton at several values of ``alpha`` (or ``target_step``).

    Parameters
    ----------
    values : sequence of float
    parameter : {"alpha", "target_step"}
    **check_args
        Passed to :func:`neurosim.check.run_check` (``options`` are merged).

    Returns
    -------
    dict
        ``values``, ``max_relative_error`` (one per value) and ``order``: the slope of
        ``log error`` against ``log value``.
    """
    from neurosim.check import run_check

    if parameter not in ("alpha", "target_step"):
        raise ValueError(f"parameter={parameter!r} must be 'alpha' or 'target_step'")
    options = dict(check_args.pop("options", {}) or {})
    errors = [run_check(NAME, options={**options, parameter: float(v)}, comparisons=False,
                        **check_args).max_relative_error for v in values]
    order = float(np.polyfit(np.log(values), np.log(errors), 1)[0])
    return {parameter: [float(v) for v in values], "max_relative_error": errors, "order": round(order, 3)}
