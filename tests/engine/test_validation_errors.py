"""Bad input gets a clear error naming the object, the parameter, the value and the fix."""
import numpy as np
import pytest

import neurosim as ns
from neurosim.dale import EISplit
from neurosim.model import CircuitError
from neurosim.schedule import ScheduleError


def pop(name, n=3, **kw):
    return ns.Population(name, n, **kw)


def test_non_positive_tau():
    with pytest.raises(ValueError, match=r"Population 'h': tau_ms=0\.0 ms must be a finite time > 0"):
        pop("h", tau_ms=0.0)
    with pytest.raises(ValueError, match=r"tau_ms=-1\.0"):
        pop("h", tau_ms=-1.0)


def test_non_positive_dt():
    with pytest.raises(ValueError, match=r"Phase 'p': dt_ms=0\.0 ms must be a finite time > 0"):
        ns.Phase("p", evolve=["a"], dt_ms=0.0)


def test_bad_size_and_activation():
    with pytest.raises(CircuitError, match="size=0 must be a positive integer"):
        pop("h", 0)
    with pytest.raises(CircuitError, match="activation='swish' is unknown"):
        pop("h", activation="swish")


def test_shape_mismatch_names_projection_and_expected_shape():
    with pytest.raises(CircuitError, match=r"Projection 'W': weights have shape \(2, 3\), expected \(n_post, n_pre\) = \(4, 3\)"):
        ns.Circuit([pop("a", 3), pop("b", 4)], [ns.Projection("W", "a", "b", np.zeros((2, 3)))])


def test_unknown_population_in_projection_and_phase():
    with pytest.raises(CircuitError, match=r"post='c' is not a population"):
        ns.Circuit([pop("a"), pop("b")], [ns.Projection("W", "a", "c", np.zeros((3, 3)))])
    c = ns.Circuit([pop("a"), pop("b")], [])
    with pytest.raises(ScheduleError, match="evolve names unknown population 'z'"):
        ns.Schedule(c, [ns.Phase("p", evolve=["z"])], readout="a")
    with pytest.raises(ScheduleError, match="unknown projection 'W9'"):
        ns.Schedule(c, [ns.Phase("p", evolve=["a"], projections=["W9"])], readout="a")


def test_bias_shape():
    with pytest.raises(CircuitError, match=r"bias has shape \(2,\), expected \(3,\)"):
        pop("h", 3, bias=np.zeros(2))


def test_dale_mask_that_does_not_fit():
    signs = EISplit(0.5).signs(4)
    bad = np.ones((3, 4))  # inhibitory columns positive
    with pytest.raises(CircuitError, match="2 initial weights contradict|6 initial weights contradict"):
        ns.Circuit([pop("a", 4, ei=EISplit(0.5)), pop("b", 3)], [ns.Projection("W", "a", "b", bad, sign="dale")])
    with pytest.raises(CircuitError, match="sign='dale' needs an EISplit on its presynaptic population 'a'"):
        ns.Circuit([pop("a", 4), pop("b", 3)], [ns.Projection("W", "a", "b", bad, sign="dale")])
    with pytest.raises(ValueError, match=r"EISplit.exc=1.5 must lie in \(0, 1\]"):
        EISplit(1.5)
    assert signs.tolist() == [1, 1, -1, -1]


def test_gain_must_be_local():
    with pytest.raises(CircuitError, match="gain='a' must be the postsynaptic neurons"):
        ns.Circuit([pop("a"), pop("b")], [ns.Projection("W", "a", "b", np.zeros((3, 3)), gain="a")])


def test_compartment_size_and_duplicate_names():
    with pytest.raises(CircuitError, match="compartment 'e' has size 2 but its neurons 'a' have 3"):
        ns.Circuit([pop("a", 3), pop("e", 2, compartment_of="a")], [])
    with pytest.raises(CircuitError, match=r"population names \['a'\] are used twice"):
        ns.Circuit([pop("a"), pop("a")], [])


def test_instantaneous_loop_refused():
    a = pop("a", tau_ms=None)
    b = pop("b", tau_ms=None)
    projs = [ns.Projection("ab", "a", "b", np.eye(3)), ns.Projection("ba", "b", "a", np.eye(3))]
    with pytest.raises(CircuitError, match="instantaneous populations form a loop"):
        ns.Circuit([a, b], projs)


def test_tied_errors():
    with pytest.raises(CircuitError, match="tied to 'X', which is not a projection"):
        ns.Circuit([pop("a"), pop("b")], [ns.Projection("B", "b", "a", ns.Tied("X"))])
    with pytest.raises(CircuitError, match="cannot be plastic"):
        ns.Projection("B", "b", "a", ns.Tied("W"), plastic=True)


def test_batch_shape_mismatch_at_run_time():
    from neurosim.circuits import backprop as bp

    c = bp.build([4, 5, 2])
    sim = ns.Simulator(c, bp.schedule(c))
    with pytest.raises(ValueError, match=r"batch\['x'\] has shape \(3, 5\), the population needs \(3, 4\)"):
        sim.run_trial({"x": np.zeros((3, 5)), "y": np.zeros((3, 2))})


def test_learning_rule_on_non_plastic_projection():
    c = ns.Circuit([pop("a"), pop("b")], [ns.Projection("W", "a", "b", np.eye(3))])
    with pytest.raises(ScheduleError, match="projection 'W' is not plastic; build it with plastic=True"):
        ns.Schedule(c, [ns.Learn({"W": ns.OuterProduct(("b", "u"), ("a", "r"))})], readout="b")


def test_brian2_time_quantities_are_accepted():
    from brian2 import mV, ms, second

    p = ns.Population("h", 3, tau_ms=10 * ms)
    assert p.tau_ms == pytest.approx(10.0)
    ph = ns.Phase("p", evolve=["h"], dt_ms=0.1 * ms, max_ms=0.05 * second)
    assert ph.dt_ms == pytest.approx(0.1) and ph.max_ms == pytest.approx(50.0)
    with pytest.raises(ValueError, match="not time"):
        ns.Population("h", 3, tau_ms=10 * mV)
