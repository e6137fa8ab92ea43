"""Running scenario scripts: defaults, ``--set key=value`` overrides, output paths.

A scenario is a Python file that defines ``CONFIG`` (a dict of defaults, which always
includes ``out``, ``seed``, ``backend`` and ``dtype``) and ``run(config) -> None``. It ends
with ``if __name__ == "__main__": neurosim.scenario.main(run, CONFIG)`` so that it runs both
as ``python scenarios/x.py --set epochs=3`` and as ``neurosim run scenarios/x.py``.

Both check the whole configuration (every ``--set`` key and value) and refuse an existing
``out`` (file or directory) unless ``--overwrite`` is given, before the scenario runs, so a
mistyped option never touches an earlier result.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["parse_set", "merge_config", "check_output", "load_scenario", "run_file", "main", "add_common_arguments"]


def parse_set(items: Sequence[str]) -> dict[str, str]:
    """``["epochs=3", "lr=0.1"]`` -> ``{"epochs": "3", "lr": "0.1"}`` (strings, cast later)."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--set {item!r} must look like key=value, e.g. --set epochs=3")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _cast(key: str, text: str, default: Any) -> Any:
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--set {key}={text!r}: expected true or false")
    if default is None or isinstance(default, str):
        return text
    if isinstance(default, (list, tuple, dict)):
        try:
            return type(default)(json.loads(text)) if not isinstance(default, dict) else json.loads(text)
        except json.JSONDecodeError:
            if isinstance(default, (list, tuple)):
                return type(default)(type(default[0])(t) if default else t for t in text.split(","))
            raise ValueError(f"--set {key}={text!r}: expected JSON") from None
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f"--set {key}={text!r}: expected a {type(default).__name__}") from None


def merge_config(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults updated by overrides (strings are cast to the default's type); unknown keys raise."""
    cfg = dict(defaults)
    for k, v in overrides.items():
        if k not in cfg:
            raise ValueError(f"--set {k}=...: the scenario has no setting {k!r}; it has {sorted(cfg)}")
        cfg[k] = _cast(k, v, cfg[k]) if isinstance(v, str) else v
    return cfg


def check_output(out: str | Path | None, overwrite: bool) -> None:
    """Refuse to run when the output ``out`` (a trace file or a directory of results) exists.

    Parameters
    ----------
    out
        The scenario's ``out`` setting (``None``: the scenario writes nothing).
    overwrite
        ``--overwrite`` was given: an existing ``out`` is replaced.

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``overwrite`` is false, naming it and the two ways out.
    """
    if out is None or overwrite or not Path(out).exists():
        return
    kind = "directory" if Path(out).is_dir() else "file"
    raise FileExistsError(
        f"--out {str(out)!r} exists ({kind}) and would be overwritten; pass --overwrite to replace it, "
        "or choose another --out"
    )


def load_scenario(path: str | Path):
    """Import a scenario file as a module (``CONFIG`` and ``run`` required)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scenario {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"neurosim_scenario_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for attr in ("CONFIG", "run"):
        if not hasattr(mod, attr):
            raise AttributeError(f"scenario {str(path)!r} defines no {attr}; see neurosim.scenario's docstring")
    return mod


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="trace file (HDF5) or directory to write; refused if it exists, see --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--seed", type=int)
    p.add_argument("--backend", help="numpy, numba or cupy")
    p.add_argument("--dtype", choices=("float64", "float32"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a scenario setting")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = parse_set(args.set)
    for k in ("out", "seed", "backend", "dtype"):
        v = getattr(args, k, None)
        if v is not None:
            over[k] = v
    return over


def run_file(path: str | Path, args: argparse.Namespace) -> None:
    """What ``neurosim run`` does: check the configuration and ``--out``, then run."""
    mod = load_scenario(path)
    config = merge_config(mod.CONFIG, _overrides(args))
    check_output(config.get("out"), args.overwrite)
    mod.run(config)


def main(run: Callable[[dict], None], defaults: Mapping[str, Any], argv: Sequence[str] | None = None) -> None:
    """Entry point for ``python scenarios/x.py [--out FILE] [--seed N] [--set k=v]``."""
    p = argparse.ArgumentParser(description="run a neurosim scenario")
    add_common_arguments(p)
    args = p.parse_args(argv)
    try:
        config = merge_config(defaults, _overrides(args))
        check_output(config.get("out"), args.overwrite)
    except (ValueError, FileExistsError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    run(config)
