"""Export a trained network's inference phase to a Brian2 network that runs on new inputs."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .build import to_brian2
from .network import BrianPhase

__all__ = ["BrianForward", "export_forward"]


class BrianForward:
    """A trained network's inference phase as a Brian2 network, built once and reused.

    Attributes
    ----------
    network : BrianPhase
        The Brian2 network (``network.describe()`` prints its equations).
    readout : str
        Population whose final state is the output (pre-activation / logits).
    steps : int
        Integration steps per presentation.
    data_key : str
        Key of the batch array the phase reads (e.g. ``"x"``).
    """

    def __init__(self, network: BrianPhase, readout: str, steps: int, data_key: str):
        self.network = network
        self.readout = readout
        self.steps = steps
        self.data_key = data_key

    @property
    def batch_size(self) -> int:
        return self.network.batch_size

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The readout after ``steps`` steps for every row of ``x`` (N, d_in) -> (N, d_out).

        Rows are presented ``batch_size`` at a time (the last chunk padded with zeros); every
        presentation starts from the trial's initial state (0).
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"x has shape {x.shape}; pass a 2-D array (samples, inputs)")
        B = self.batch_size
        outs = []
        for i in range(0, x.shape[0], B):
            chunk = x[i:i + B]
            n = chunk.shape[0]
            if n < B:
                chunk = np.concatenate([chunk, np.zeros((B - n,) + chunk.shape[1:])])
            self.network.load({self.data_key: chunk})
            self.network.run(self.steps)
            outs.append(self.network.state(self.readout)[:n])
        return np.concatenate(outs) if outs else np.zeros((0, self.network.circuit.population(self.readout).size))


def export_forward(sim, *, phase: str | None = None, batch_size: int = 256, steps: int | None = None,
                   target: str = "cython", layout: str = "synapses", dtype: str = "float64") -> BrianForward:
    """Build a simulator's inference phase, with its current weights, as a Brian2 network.

    Parameters
    ----------
    sim : Simulator
        A (trained) simulator; its current weights and biases are exported.
    phase : str, optional
        Name of the phase to export (default: the schedule's only inference phase).
    batch_size : int
        Samples simulated side by side per presentation.
    steps : int, optional
        Steps per presentation (default: the phase's full ``max_ms``; Brian2 has no
        convergence stop).
    target, layout, dtype
        As for :func:`~neurosim.brian.to_brian2`.

    Returns
    -------
    BrianForward
    """
    schedule = sim.schedule
    inference = [p for p in schedule.relax_phases if not p.training]
    if phase is None:
        if len(inference) != 1:
            raise ValueError(f"the schedule has inference phases {[p.name for p in inference]}; "
                             f"pick one with phase=NAME")
        chosen = inference[0]
    else:
        chosen = schedule.phase(phase)
    keys = sorted({k for src in list(chosen.clamp.values()) + list(chosen.inputs.values()) + list(chosen.init.values())
                   for k in src.data_keys()})
    if len(keys) != 1:
        raise ValueError(f"phase {chosen.name!r} reads data keys {keys}; export_forward needs exactly one input array")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size!r} must be >= 1")
    width = None
    for name, src in list(chosen.clamp.items()) + list(chosen.inputs.items()) + list(chosen.init.items()):
        if keys[0] in src.data_keys():
            width = sim.circuit.population(name).size
    dummy: Mapping[str, Any] = {keys[0]: np.zeros((int(batch_size), width))}
    net = to_brian2(sim.circuit, chosen, dummy, weights=sim.host_weights(), biases=sim.host_biases(), layout=layout,
                    target=target, dtype=dtype, record=False)
    return BrianForward(net, schedule.readout, chosen.max_steps if steps is None else int(steps), keys[0])
