"""``neurosim plot --what maps``: feature maps of a spatial population from a trace."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import circuits
from neurosim.cli import main
from neurosim.data import Split
from neurosim.plot import plot


@pytest.fixture(scope="module")
def conv_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("maps") / "conv.h5"
    bp = circuits.get("backprop")
    c = bp.build(None, "tanh", "mse", layers="conv:3:3:pad=1,maxpool:2,dense:4", input_shape=(1, 6, 6), seed=0)
    sim = ns.Simulator(c, bp.schedule(c), backend="numpy")
    rng = np.random.default_rng(0)
    data = Split(rng.normal(size=(4, 36)), rng.normal(size=(4, 4)))
    with ns.Trace(path, mode="w") as trace:
        sim.train(data, epochs=1, batch_size=2, trace=trace,
                  monitors=[ns.StateMonitor("x1", "r", batch=[0]), ns.StateMonitor("x2", "u", batch=[0])])
    return path


def test_maps_figure_is_written_for_the_spatial_population(conv_trace, tmp_path):
    out = plot(conv_trace, "maps", tmp_path / "maps.png", trial=1)
    assert out.stat().st_size > 1000
    assert main(["plot", str(conv_trace), "--what", "maps", "-o", str(tmp_path / "m.pdf"), "--time-ms", "5"]) == 0
    assert (tmp_path / "m.pdf").read_bytes()[:4] == b"%PDF"


def test_maps_of_a_flat_population_are_refused(conv_trace, tmp_path):
    with pytest.raises(ValueError, match="spatial state streams"):
        plot(conv_trace, "maps", tmp_path / "x.png", populations=["x2"])
