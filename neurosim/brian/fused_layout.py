"""The ``fused`` layout: one ``NeuronGroup`` of ``B`` neurons, one per batch sample.

Each neuron holds every unit of the phase as its own variable (``x1_0, x1_1, ...``) and the
matrix products are written out as explicit sums, weights and biases as numbers:

``dx1_j/dt = (-x1_j + 0.31*x0_0 + (-0.12)*x0_1 + ... + 0.05)/tau_x1 : 1``

Instantaneous populations are subexpressions, which Brian2 substitutes into the equations.
The coupling is then part of the vector field that Brian2's integrator sees, so every stage
of RK4 re-evaluates it, exactly as neurosim does. The equations grow with the number of
weights (and, through substituted instantaneous populations, with their products), so this
layout suits the small networks used to check integrators; exact zeros are left out.
Weights are literals rather than parameters because every Brian2 variable costs a typed
array in the compiled code (the cython target then compiles for minutes); the time constants
stay parameters ``tau_<population> : second``. The compiled code is cached per weight set.
"""
from __future__ import annotations

import numpy as np

from .expressions import check_name, signal_expr, slope_expr
from .network import BrianPhase
from .plan import PhaseStart
from .stateupdaters import ONE_PASS_METHODS

__all__ = ["FusedPhase"]


def _literal(value: float) -> str:
    """A float as a Brian2 literal that round-trips exactly (negative ones in parentheses)."""
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


class FusedPhase(BrianPhase):
    """A phase as one group whose neurons are the batch samples."""

    layout = "fused"
    optimise = False

    @staticmethod
    def _var(population: str, unit: int) -> str:
        return f"{population}_{unit}"

    def _drive(self, name: str, j: int) -> list[str]:
        """Terms of the drive of unit ``j`` of ``name``."""
        terms = []
        for d in self.plan.drives[name]:
            proj = d.projection
            pre = self.circuit.population(proj.pre)
            products = []
            for i in np.flatnonzero(d.weights[j]):
                sig = signal_expr(pre.activation, proj.signal, self._var(proj.pre, i))
                products.append(f"{_literal(d.weights[j, i])}*{sig}")
            if not products:
                continue
            total = " + ".join(products)
            if proj.gain is not None:
                slope = slope_expr(self.circuit.population(proj.gain).activation, self._var(proj.gain, j))
                total = f"{slope}*({total})" if slope else total
            terms.append(total)
        pop = self.circuit.population(name)
        if pop.bias is not None:
            terms.append(_literal(self.biases.get(name, pop.bias)[j]))
        if name in self.phase.inputs:
            terms.append(f"I_{name}_{j}")
        return terms

    def _build(self) -> list:
        from brian2 import NeuronGroup, StateMonitor, ms
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

        plan = self.plan
        lines, declarations = [], []
        for name in plan.computed:
            pop = self.circuit.population(check_name(name, "population"))
            for j in range(pop.size):
                v = self._var(name, j)
                terms = self._drive(name, j)
                if name in plan.integrated:
                    leak = [] if pop.leak == 0 else ([f"-{v}"] if pop.leak == 1 else [f"-{pop.leak!r}*{v}"])
                    lines.append(f"d{v}/dt = ({' + '.join(leak + terms) or '0'})/tau_{name} : 1")
                else:
                    drive = " + ".join(terms) or "0"
                    lines.append(f"{v} = ({drive}) : 1" if pop.leak == 1 else f"{v} = ({drive})/{pop.leak!r} : 1")
                if name in self.phase.inputs:
                    declarations.append(f"I_{name}_{j} : 1 (constant)")
            if name in plan.integrated:
                declarations.append(f"tau_{name} : second (shared, constant)")
        for name in plan.frozen:
            size = self.circuit.population(check_name(name, "population")).size
            declarations += [f"{self._var(name, j)} : 1 (constant)" for j in range(size)]
        eqs = "\n".join(lines + declarations)
        method = ONE_PASS_METHODS.get(self.method, self.method)
        self.group = NeuronGroup(self.batch_size, eqs, method=method, order=1, clock=self.clock,
                                 name="ns_fused")
        for name in plan.integrated:
            setattr(self.group, f"tau_{name}", self.circuit.population(name).tau_ms * ms)
        self.equations[self.group.name] = eqs
        objects = [self.group]
        if self.record:
            variables = [self._var(n, j) for n in plan.computed for j in range(self.circuit.population(n).size)]
            self._monitors["all"] = StateMonitor(self.group, variables, record=True, when="groups", order=0,
                                                 clock=self.clock, name="ns_fused_monitor",
                                                 codeobj_class=NumpyCodeObject)
            objects.append(self._monitors["all"])
        return objects

    def _load(self, start: PhaseStart) -> None:
        for name in self.plan.integrated + self.plan.frozen:
            for j in range(self.circuit.population(name).size):
                setattr(self.group, self._var(name, j), start.state[name][:, j])
        for name, values in start.inputs.items():
            if name in self.plan.computed:
                for j in range(values.shape[1]):
                    setattr(self.group, f"I_{name}_{j}", values[:, j])

    def _recorded(self, population: str, first: int, stop: int) -> np.ndarray:
        mon = self._monitors["all"]
        size = self.circuit.population(population).size
        cols = [np.asarray(getattr(mon, self._var(population, j) + "_"))[:, first:stop] for j in range(size)]
        return np.stack(cols, axis=-1).transpose(1, 0, 2).copy()

    def _read(self, population: str) -> np.ndarray:
        size = self.circuit.population(population).size
        return np.stack([np.asarray(getattr(self.group, self._var(population, j) + "_")[:])
                         for j in range(size)], axis=1)

    def _state_updaters(self) -> list:
        return [self.group.state_updater] if self.plan.integrated else []
