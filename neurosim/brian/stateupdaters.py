"""Brian2's own explicit state updaters, with the stage substitution done in one pass.

Brian2 builds a Runge–Kutta stage ``f(x + k/2, t + dt/2)`` by substituting the state
variables into the right-hand side one after another (``sympy.subs``), which costs
``O(variables² · expression size)``; with dozens of variables and instantaneous populations
substituted into the equations of the ``fused`` layout that takes minutes. The stage
replacements of different variables do not involve each other, so one simultaneous
``xreplace`` gives the same expression. The scheme descriptions are Brian2's own
(``brian2.stateupdaters.explicit.euler`` and ``rk4``); the tests check that the generated
code is identical to Brian2's.
"""
from __future__ import annotations

from brian2.parsing.sympytools import str_to_sympy
from brian2.stateupdaters.explicit import SYMBOLS, ExplicitStateUpdater, _symbol, euler as brian_euler, rk4 as brian_rk4

__all__ = ["OnePassStateUpdater", "ONE_PASS_METHODS"]


class OnePassStateUpdater(ExplicitStateUpdater):
    """An :class:`~brian2.stateupdaters.explicit.ExplicitStateUpdater` for deterministic
    equations whose stage substitution replaces every state variable at once."""

    def replace_func(self, x, t, expr, temp_vars, eq_symbols, stochastic_variable=None):
        if stochastic_variable is not None:
            raise NotImplementedError("OnePassStateUpdater integrates deterministic equations only")
        s_expr = str_to_sympy(str(expr))
        mapping = {}
        for var, symbol in eq_symbols.items():
            temp = {self.symbols[tv]: _symbol(f"{tv}_{var}") for tv in temp_vars}
            mapping[symbol] = x.subs(self.symbols["__x"], symbol).subs(temp)
        s_expr = s_expr.xreplace(mapping)
        if t != self.symbols["__t"]:
            s_expr = s_expr.xreplace({SYMBOLS["t"]: t}).xreplace({self.symbols["__t"]: SYMBOLS["t"]})
        return s_expr

    def _non_stochastic_part(self, eq_symbols, non_stochastic, non_stochastic_expr, stochastic_variable, temp_vars,
                             var):
        if stochastic_variable is not None and len(stochastic_variable) > 0:
            raise NotImplementedError("OnePassStateUpdater integrates deterministic equations only")
        result = non_stochastic_expr.replace(
            self.symbols["__f"], lambda x, t: self.replace_func(x, t, non_stochastic, temp_vars, eq_symbols)
        )
        result = result.xreplace({self.symbols["__x"]: eq_symbols[var]})
        return [result.xreplace({self.symbols[tv]: _symbol(f"{tv}_{var}") for tv in temp_vars})]


ONE_PASS_METHODS = {
    "euler": OnePassStateUpdater(brian_euler._description, stochastic=brian_euler.stochastic),
    "rk4": OnePassStateUpdater(brian_rk4._description, stochastic=brian_rk4.stochastic),
}
"""neurosim integrator -> Brian2's scheme of the same name, substituted in one pass."""
