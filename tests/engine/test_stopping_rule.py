"""The one stopping rule (neurosim.stopping) on every backend.

Oracle: closed forms. A linear population with self-excitation ``w`` and forward Euler at
``dt = tau`` grows as ``u_k = w**k u_0``; the rule must call it diverged at the first step at
which ``max|u|`` exceeds ``sqrt(max float)`` (never "converged" or a finite "max_time" with an
absurd residual), on numpy, numba and the device loop's numpy twin, and the CUDA source must
spell the same bound.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from neurosim import stopping
from neurosim.backends import Diverged, NumpyBackend
from neurosim.backends._cupy_kernels import cuda_source
from neurosim.backends._device_loop import HostRuntime
from neurosim.backends.cupy_backend import CupyBackend
from neurosim.dynamics import PhaseField
from neurosim.model import Circuit, Population, Projection
from neurosim.schedule import Converged, Phase
from neurosim.stopping import PhaseStatus


def test_status_codes_round_trip_and_running_is_not_a_status():
    for status in PhaseStatus:
        assert PhaseStatus.from_code(status.code) is status
        assert str(status) == status.value
    with pytest.raises(ValueError, match="not a finished phase"):
        PhaseStatus.from_code(stopping.RUNNING)


def test_rule_functions():
    assert stopping.residual(2.0, 10.0, 0.5) == 40.0
    assert stopping.within_tolerance(1e-9, 1.0, 1e-9, 0.0) and not stopping.within_tolerance(2e-9, 1.0, 1e-9, 0.0)
    assert stopping.advance_window(3, True) == 4 and stopping.advance_window(3, False) == 0
    bound = stopping.divergence_bound("float64")
    assert bound == pytest.approx(1.34e154, rel=1e-2)
    assert stopping.divergence_bound("float32") == pytest.approx(1.84e19, rel=1e-2)
    for r, s in ((math.nan, 1.0), (1.0, math.inf), (3e273, 1.0), (1.0, 2 * bound)):
        assert stopping.diverging(r, s, bound)
    assert not stopping.diverging(1e100, 1e100, bound)


def _growing(w: float = 3.0, steps: int = 420, until=None):
    circuit = Circuit([Population("u", 2, tau_ms=1.0, activation="linear")],
                      [Projection("S", "u", "u", w * np.eye(2), signal="u")], name="growth")
    phase = Phase("grow", evolve=("u",), dt_ms=1.0, max_ms=float(steps), until=until)
    y0 = {"u": np.full((1, 2), 1.0)}
    return PhaseField(circuit, phase, circuit.initial_weights(), {}, dict(y0), {}), phase, y0


BACKENDS = {
    "numpy": lambda: NumpyBackend("float64"),
    "numba": lambda: pytest.importorskip("neurosim.backends.numba_backend").NumbaBackend("float64"),
    "device loop (numpy twin)": lambda: CupyBackend("float64", runtime=HostRuntime("float64")),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("until", [None, Converged(rtol=0.5, atol=0.0)], ids=["fixed", "criterion"])
def test_overflowing_state_is_diverged_on_every_backend(backend, until):
    """3**k passes 1.34e154 at k = 324 (3**323 = 1.26e154): diverged there, not max_time or converged."""
    field, phase, y0 = _growing(until=until)
    with pytest.raises(Diverged, match=r"exceeded 1.34e\+154") as err:
        BACKENDS[backend]().relax(field, phase, y0, 0.0)
    assert err.value.step == 324 and err.value.population == "u"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_large_but_bounded_growth_runs_to_max_time(backend):
    field, phase, y0 = _growing(steps=300)  # 3**300 = 1.4e143 < bound
    result = BACKENDS[backend]().relax(field, phase, y0, 0.0)
    assert result.status is PhaseStatus.MAX_TIME and result.steps == 300
    assert result.state["u"][0, 0] == pytest.approx(3.0 ** 300, rel=1e-12)


def test_cuda_source_spells_the_same_bound():
    for dtype in ("float64", "float32"):
        src = cuda_source(dtype)
        assert f"#define BOUND {stopping.divergence_bound(dtype)!r}" in src
        assert "r <= BOUND && s <= BOUND" in src
