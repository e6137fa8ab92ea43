"""The ``synapses`` layout: one ``NeuronGroup`` per population, one ``Synapses`` per projection.

Population ``p`` of ``n`` units becomes a group of ``B*n`` neurons (neuron ``b*n + j`` is unit
``j`` of batch sample ``b``) with

``du/dt = (-leak*u + Σ_k [f'(u)*] I_k + b + I_ext)/tau : 1``  (``tau : second``)

and projection ``k`` becomes ``Synapses`` inside every sample's block with
``I_k_post = w*s_pre[*dfg_post] : 1 (summed)``. Instantaneous populations are subexpressions
``u = (Σ_k I_k + b + I_ext)/leak``; clamped and held populations are constant. Non-linear
signals that synapses read (the rate ``r = f(u)``, the slope ``df = f'(u)``) are computed once
per neuron and step, before the synapses sum them, by a ``run_regularly`` operation of the
group; a gain read from another compartment arrives through a linked variable ``dfg_<pop>``.

Brian2 updates summed variables once per time step, before the state updaters. Forward Euler
and exponential Euler evaluate the input once per step too, so they agree with neurosim to
round-off; RK4 here holds the synaptic input fixed over the step (first order in the
coupling), so use the ``fused`` layout for RK4.
"""
from __future__ import annotations

import numpy as np

from .expressions import check_name, rate_expr, signal_expr, slope_expr
from .network import BrianPhase
from .plan import Drive, PhaseStart

__all__ = ["SynapsesPhase"]


class SynapsesPhase(BrianPhase):
    """A phase as populations (``NeuronGroup``) joined by projections (``Synapses``)."""

    layout = "synapses"

    def _gain_in_equation(self, proj) -> bool:
        # a gain read from the neuron itself multiplies the summed input in its own equation,
        # unless exponential Euler needs the equation linear in u
        return proj.gain == proj.post and self.method != "exponential_euler"

    def _cached_signals(self) -> dict[str, list[str]]:
        """Non-linear signals (``r``, ``df``) synapses read from integrated or held populations."""
        out: dict[str, list[str]] = {}
        for name in self.plan.computed:
            for d in self.plan.drives[name]:
                proj = d.projection
                wanted = [(proj.pre, proj.signal)]
                if proj.gain is not None and not self._gain_in_equation(proj):
                    if proj.gain in self.plan.instantaneous:
                        raise NotImplementedError(
                            f"projection {proj.name!r}: a gain read from instantaneous population {proj.gain!r} "
                            f"is not supported in the synapses layout; use layout='fused'"
                        )
                    wanted.append((proj.gain, "df"))
                for pop, signal in wanted:
                    linear = self.circuit.population(pop).activation == "linear"
                    if signal != "u" and not linear and pop not in self.plan.instantaneous:
                        out.setdefault(pop, [])
                        if signal not in out[pop]:
                            out[pop].append(signal)
        return out

    def _population_equations(self, name: str) -> str:
        pop = self.circuit.population(name)
        cached = [f"{sig} : 1" for sig in self._signals.get(name, [])]
        if name in self.plan.frozen:
            return "\n".join(["u : 1 (constant)"] + cached)
        lines, terms = [], []
        instantaneous = name in self.plan.instantaneous
        if not instantaneous and pop.leak != 0:
            terms.append("-u" if pop.leak == 1 else f"-{pop.leak!r}*u")
        for d in self.plan.drives[name]:
            proj = d.projection
            var = f"I_{check_name(proj.name, 'projection')}"
            lines.append(f"{var} : 1")
            gain = None
            if proj.gain is not None and self._gain_in_equation(proj):
                if instantaneous:
                    raise NotImplementedError(
                        f"projection {proj.name!r}: an instantaneous population {name!r} cannot gate its own input"
                    )
                gain = slope_expr(pop.activation, "u")
            terms.append(f"{gain}*{var}" if gain else var)
        if pop.bias is not None:
            lines.append("b : 1 (constant)")
            terms.append("b")
        if name in self.phase.inputs:
            lines.append("I_ext : 1 (constant)")
            terms.append("I_ext")
        lines += [f"dfg_{check_name(g, 'population')} : 1 (linked)" for g in sorted(self._links(name))]
        drive = " + ".join(terms) or "0"
        if instantaneous:
            head = f"u = ({drive}) : 1" if pop.leak == 1 else f"u = ({drive})/{pop.leak!r} : 1"
        else:
            head = f"du/dt = ({drive})/tau : 1"
            lines.append("tau : second (shared, constant)")
        return "\n".join([head] + lines + cached)

    def _links(self, name: str) -> set[str]:
        """Other compartments whose slope gates a projection into ``name`` (linked variables)."""
        return {d.projection.gain for d in self.plan.drives[name]
                if d.projection.gain not in (None, name) and not self._gain_in_equation(d.projection)
                and "df" in self._signals.get(d.projection.gain, [])}

    def _synapse_model(self, d: Drive) -> str:
        proj = d.projection
        pre = self.circuit.population(proj.pre)
        cached = proj.signal in self._signals.get(proj.pre, [])
        expr = f"w*{proj.signal}_pre" if cached else f"w*{signal_expr(pre.activation, proj.signal, 'u_pre')}"
        if proj.gain is not None and not self._gain_in_equation(proj):
            if "df" in self._signals.get(proj.gain, []):
                expr += "*df_post" if proj.gain == proj.post else f"*dfg_{proj.gain}_post"
        return f"w : 1 (constant)\nI_{proj.name}_post = {expr} : 1 (summed)"

    def _build(self) -> list:
        from brian2 import NeuronGroup, StateMonitor, Synapses, linked_var, ms
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

        plan, B = self.plan, self.batch_size
        top = max(plan.levels.values(), default=-1) + 2  # summed updaters use orders 0..top-1
        self._signals = self._cached_signals()
        self.groups = {}
        for name in plan.computed + plan.frozen:
            pop = self.circuit.population(check_name(name, "population"))
            eqs = self._population_equations(name)
            group = NeuronGroup(B * pop.size, eqs, method=self.method, order=top + 1,
                                clock=self.clock, name=f"ns_{name}")
            if name in plan.integrated:
                group.tau = pop.tau_ms * ms
            if pop.bias is not None and name in plan.computed:
                group.b = np.tile(self.biases.get(name, pop.bias), B)
            if name in self._signals:  # before every summed variable reads them
                code = {"r": f"r = {rate_expr(pop.activation, 'u')}", "df": f"df = {slope_expr(pop.activation, 'u')}"}
                group.run_regularly("\n".join(code[sig] for sig in self._signals[name]), when="groups", order=-1,
                                    name=f"ns_{name}_signals")
            self.groups[name] = group
            self.equations[group.name] = eqs
        for name in plan.computed:
            for g in self._links(name):
                setattr(self.groups[name], f"dfg_{g}", linked_var(self.groups[g], "df"))
        synapses = []
        for name in plan.computed:
            for d in plan.drives[name]:
                proj = d.projection
                model = self._synapse_model(d)
                syn = Synapses(self.groups[proj.pre], self.groups[name], model=model, clock=self.clock,
                               name=f"ns_{proj.name}")
                post, pre = np.nonzero(d.weights)
                n_pre, n_post = d.weights.shape[1], d.weights.shape[0]
                offsets = np.arange(B)[:, None]
                syn.connect(i=(offsets * n_pre + pre).ravel(), j=(offsets * n_post + post).ravel())
                syn.w = np.tile(d.weights[post, pre], B)
                level = plan.levels.get(proj.pre, -1) + 1
                for updater in syn.summed_updaters.values():
                    updater.order = level
                synapses.append(syn)
                self.equations[syn.name] = model
        if self.record:
            for name in plan.computed:
                self._monitors[name] = StateMonitor(self.groups[name], "u", record=True, when="groups", order=top,
                                                    clock=self.clock, name=f"ns_mon_{name}",
                                                    codeobj_class=NumpyCodeObject)
        return list(self.groups.values()) + synapses + list(self._monitors.values())

    def _load(self, start: PhaseStart) -> None:
        for name, group in self.groups.items():
            if name not in self.plan.instantaneous:
                group.u = start.state[name].ravel()
            if name in start.inputs and name in self.plan.computed:
                group.I_ext = start.inputs[name].ravel()

    def _recorded(self, population: str, first: int, stop: int) -> np.ndarray:
        values = np.asarray(self._monitors[population].u_)[:, first:stop]
        n = self.circuit.population(population).size
        return values.reshape(self.batch_size, n, -1).transpose(2, 0, 1).copy()

    def _read(self, population: str) -> np.ndarray:
        return np.asarray(self.groups[population].u_[:]).reshape(self.batch_size, -1).copy()

    def _state_updaters(self) -> list:
        return [self.groups[n].state_updater for n in self.plan.integrated]
