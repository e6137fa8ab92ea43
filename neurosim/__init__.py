"""neurosim: continuous-time simulation of learning circuits for credit assignment.

Layers are rate populations ``tau du/dt = -u + inputs`` with separate feedforward and feedback
circuits; learning circuits (backprop as dynamics, feedback alignment, predictive coding,
dynamic inversion, ...) run as real dynamics in time, phase by phase, with HDF5 traces.
"""
from ._version import __version__
from .activations import Activation, get_activation
from .backends import available_backends, get_backend
from .dale import EISplit
from .integrate import StabilityError
from .losses import get_loss
from .model import Circuit, CircuitError, Population, Projection, Tied
from .monitors import ConvergenceMonitor, StateMonitor, WeightMonitor
from .plasticity import SGD, Adam, BiasRule, LocalityError, OuterProduct, Rule
from .schedule import Converged, Learn, Phase, Schedule, ScheduleError
from .simulator import SimulationError, Simulator, TrialResult
from .sources import Constant, Data, OutputError, StateOf, Zero
from .training import History

__all__ = [
    "__version__", "Activation", "get_activation", "EISplit", "get_loss", "Circuit", "CircuitError",
    "Population", "Projection", "Tied", "SGD", "Adam", "BiasRule", "LocalityError", "OuterProduct", "Rule",
    "Converged", "Learn", "Phase", "Schedule", "ScheduleError", "Constant", "Data", "OutputError",
    "StateOf", "Zero", "StabilityError", "ConvergenceMonitor", "StateMonitor", "WeightMonitor",
    "History", "SimulationError", "Simulator", "TrialResult", "available_backends", "get_backend",
]


def __getattr__(name: str):
    # heavy or optional submodules load on first use
    if name in ("data", "analysis", "trace", "plot", "scenario", "check", "alignment", "regularisers", "stability",
                "online", "brian"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("Trace", "load_trace"):
        from . import trace

        return getattr(trace, name)
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
