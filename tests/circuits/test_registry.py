"""The circuit contract and the registry: every circuit keeps the contract; broken modules are reported, not dropped."""
import sys
import textwrap

import numpy as np
import pytest

from neurosim import circuits
from neurosim.analysis import backprop_reference
from neurosim.check import run_check
from neurosim.circuit_contract import CircuitModule, contract_problems
from neurosim.circuits import CircuitUnavailableError, backprop, discover
from neurosim.cli import main

GOOD = '''
NAME = "{name}"
SUMMARY = "a working circuit"


def build(sizes, activation="tanh", loss="mse", *, seed=0, width=1):
    return None


def schedule(circuit, *, lr=0.1):
    return None
'''

FAKE_MODULES = {
    "good": GOOD.format(name="good"),
    "missing_dep": 'NAME = "needs_dep"\nimport no_such_package_xyz  # noqa\n',
    "runtime": 'raise RuntimeError("boom at import")\n',
    "syntax": 'NAME = "syn"\ndef broken(:\n',
    "no_build": 'NAME = "no_build"\nSUMMARY = "lacks build"\n\ndef schedule(circuit):\n    return None\n',
    "twin": GOOD.format(name="good"),
    "_helper": 'raise RuntimeError("helpers are not circuits")\n',
}


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """The registry of a temporary package of circuit modules, some of them broken."""
    package = "fake_circuits_for_registry_test"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, source in FAKE_MODULES.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = __import__(package)
    yield discover(package, pkg.__path__)
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def test_every_registered_circuit_keeps_the_contract():
    assert circuits.REGISTRY, "no circuit found"
    for name, entry in circuits.REGISTRY.items():
        assert entry.ok, f"{name}: {entry.error}"
        module = circuits.get(name)
        assert module.NAME == name and entry.summary == module.SUMMARY
        assert isinstance(module, CircuitModule)
        assert contract_problems(module) == []


def test_contract_problems_name_each_broken_part():
    class Module:
        NAME = "two words"
        schedule = 3

        @staticmethod
        def build(sizes):
            return None

        @staticmethod
        def check_reference(circuit, schedule):
            return None

    problems = contract_problems(Module)
    assert problems[0] == "SUMMARY is missing"
    assert any("NAME='two words'" in p for p in problems)
    assert any(p.startswith("build cannot be called as build(sizes, activation, loss, seed=...)") for p in problems)
    assert "schedule=3 is not callable" in problems
    assert any(p.startswith("check_reference cannot be called") for p in problems)
    assert contract_problems(backprop) == []


def test_discover_records_every_failing_module_with_its_error(fake_registry):
    reg = fake_registry
    assert set(reg) == {"good", "needs_dep", "runtime", "syntax", "no_build", "twin"}
    assert reg["good"].ok and reg["good"].summary == "a working circuit"
    assert reg["needs_dep"].module.endswith(".missing_dep")  # its NAME, read from the source it could not run
    assert reg["needs_dep"].error == "ModuleNotFoundError: No module named 'no_such_package_xyz'"
    assert isinstance(reg["needs_dep"].exception, ModuleNotFoundError)
    assert reg["runtime"].error == "RuntimeError: boom at import"
    assert reg["syntax"].error.startswith("SyntaxError")  # the source does not parse: named after its module
    assert reg["no_build"].error == "breaks the circuit contract: build is missing"
    assert reg["twin"].error == "NAME 'good' is already taken by fake_circuits_for_registry_test.good"
    assert not any(e.ok for n, e in reg.items() if n != "good")


def test_get_and_the_cli_report_an_unavailable_circuit(fake_registry, monkeypatch, capsys):
    monkeypatch.setattr(circuits, "REGISTRY", {**circuits.REGISTRY, **fake_registry})
    with pytest.raises(CircuitUnavailableError, match=r"No module named 'no_such_package_xyz'") as info:
        circuits.get("needs_dep")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ValueError, match=r"circuit 'nope' is unknown; available: \[.*'backprop'.*\]; unavailable: .*"
                                         r"needs_dep \(ModuleNotFoundError"):
        circuits.get("nope")
    assert circuits.get("good").NAME == "good"

    assert main(["circuits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("backprop ") for line in lines)
    [line] = [line for line in lines if line.startswith("needs_dep")]
    assert "(unavailable: ModuleNotFoundError: No module named 'no_such_package_xyz')" in line
    assert any(line.startswith("runtime") and "boom at import" in line for line in lines)

    assert main(["check", "needs_dep"]) == 2
    assert "circuit 'needs_dep'" in capsys.readouterr().err


def test_check_uses_a_circuit_s_own_reference(monkeypatch):
    seen = {}

    def doubled_backprop(circuit, schedule, weights, biases, x, y):
        seen.update(weights=set(weights), biases=set(biases), schedule=schedule)
        dW, db = backprop_reference([weights["W1"], weights["W2"]], [biases["x1"], biases["x2"]], x, y, "tanh", "mse")
        return {"W1": 2 * dW[0], "W2": 2 * dW[1]}, {"x1": 2 * db[0], "x2": 2 * db[1]}

    plain = run_check("backprop", sizes=(5, 6, 3), batch=4)
    assert plain.reference == "backprop (algebraic)" and plain.max_relative_error < 1e-8
    monkeypatch.setattr(backprop, "check_reference", doubled_backprop, raising=False)
    report = run_check("backprop", sizes=(5, 6, 3), batch=4)
    assert {"W1", "W2"} <= seen["weights"] and {"x1", "x2"} <= seen["biases"]
    assert seen["schedule"].circuit is not None
    assert report.reference == "backprop.check_reference"
    assert report.as_dict()["reference"] == "backprop.check_reference"
    assert "update vs backprop.check_reference, per layer:" in report.table()
    np.testing.assert_allclose([r["dW_rel_error"] for r in report.layers], 0.5, rtol=1e-8)
