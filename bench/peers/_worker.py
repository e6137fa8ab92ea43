"""The worker side of ``bench_relaxation.py``: load a problem, warm up, then time on request.

Every implementation of the canonical relaxation runs in its own process (its own interpreter
and virtual environment), started by the driver as
``python bench/peers/<impl>.py PROBLEM.npz OUT.npz``, pinned with ``taskset`` and with the
thread counts already set in its environment. The protocol on stdin/stdout, one JSON object
per line:

1. the worker loads ``PROBLEM.npz`` (``W1 W2 W3 b1 b2 b3 x y v1 v2`` in the working dtype,
   ``steps``, ``gamma``), builds each of its *variants* (a callable ``run() -> (v1, v2)``: one
   whole relaxation of ``steps`` steps from the feedforward state ``v1, v2``), calls each once
   (compilation), saves every variant's final state to ``OUT.npz`` (``<variant>.v1``, ...) and
   prints ``{"ready": true, "variants": [...], "first_s": {...}, "warm_s": {...}, "versions": {...}}``;
2. the driver sends ``{"variant": name, "reps": n}``; the worker runs the variant ``n`` times
   and answers ``{"times": [seconds, ...]}``; only the run itself is timed;
3. ``{"quit": true}`` (or end of input) ends the worker.

Nothing but these lines goes to stdout (libraries' chatter is sent to stderr).
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Runner = Callable[[], tuple[Any, Any]]


def load_problem(path: str) -> dict[str, Any]:
    """The problem arrays of ``path`` (dtype kept) plus ``steps`` (int) and ``gamma`` (float)."""
    with np.load(path) as z:
        p = {k: z[k] for k in z.files}
    p["steps"] = int(p["steps"])
    p["gamma"] = float(p["gamma"])
    return p


def serve(variants: dict[str, Runner], out_path: str, versions: dict[str, str]) -> None:
    """Warm up every variant, save their final states, then answer timing requests until told to quit.

    Parameters
    ----------
    variants : dict
        Variant name -> ``run() -> (v1, v2)`` (arrays or anything ``np.asarray`` converts;
        ``run`` must block until the result is computed).
    out_path : str
        Where the final states are saved (``<variant>.v1``, ``<variant>.v2``).
    versions : dict
        Library versions, reported to the driver.
    """
    stdout = sys.stdout
    sys.stdout = sys.stderr  # keep the protocol channel clean
    first, warm, finals = {}, {}, {}
    for name, run in variants.items():
        t0 = time.perf_counter()
        v1, v2 = run()
        first[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        v1, v2 = run()
        warm[name] = time.perf_counter() - t0
        finals[f"{name}.v1"], finals[f"{name}.v2"] = np.asarray(v1), np.asarray(v2)
    np.savez(out_path, **finals)
    _send(stdout, {"ready": True, "variants": list(variants), "first_s": first, "warm_s": warm,
                   "versions": versions})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("quit"):
            break
        run = variants[msg["variant"]]
        times = []
        for _ in range(int(msg["reps"])):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        _send(stdout, {"times": times})


def _send(stream, obj: dict) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()
