"""Parameter sweeps of a scenario: grid x seeds as Dask tasks, resumable, one trace per run.

``neurosim sweep SCENARIO.py --grid lr=0.1,0.5 --seeds 0,1 --out DIR`` runs the scenario's
``run(config)`` once per combination of grid values and seed. Every run is one task of a
:mod:`dask.distributed` cluster: a :class:`distributed.LocalCluster` sized to the machine (one
single-threaded worker process per core, with the OpenMP/BLAS/Numba thread counts pinned to 1
so that runs do not oversubscribe the cores), or an existing cluster given by its scheduler
address (``tcp://host:8786``, e.g. a SLURM cluster started with dask-jobqueue).

What lands in the output folder ``DIR``:

- ``DIR/<name>.h5``: the trace of each run, ``<name>`` built from the grid values and the seed,
  e.g. ``lr=0.1__hidden=48__seed=0.h5``;
- ``DIR/runs/<name>.json``: the state of each finished run (configuration, status, error,
  metrics returned by ``run()``), written atomically by the worker the moment the run ends, so
  a killed sweep loses no finished run;
- ``DIR/logs/<name>.log``: what the run printed;
- ``DIR/sweep.json``: the sweep's definition (scenario, its SHA-256, grid, seeds, ``--set``);
  a rerun into ``DIR`` with another definition is refused unless ``force=True``;
- ``DIR/results.csv``: one row per run (grid keys, ``seed``, ``status``, ``error``, the metrics,
  ``task_wall_s``, ``trace``);
- ``DIR/summary.md``: mean ± sd of every numeric metric per grid cell, over the seeds that
  finished.

A rerun of the same sweep skips the runs whose state says ``ok`` and runs only the missing and
failed ones. Dask and pandas are imported only when a sweep runs (extra ``neurosim[sweep]``).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    "SweepError", "SweepRun", "SweepResult", "parse_grid", "parse_seeds", "plan_runs", "run_sweep",
    "PINNED_THREAD_ENV",
]

#: Environment of every worker process of the local cluster: one thread per library.
PINNED_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

_RESERVED_KEYS = ("seed", "out")
_NAME_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


class SweepError(ValueError):
    """A sweep that cannot start: bad grid, or an output folder holding another sweep."""


def _require(module: str, extra: str = "sweep"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"neurosim sweep needs {module!r}, which is not installed ({err}); "
            f'install the extra: pip install "neurosim[{extra}]"'
        ) from None


# --------------------------------------------------------------------------- parsing
def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``--grid`` options.

    Parameters
    ----------
    items
        Strings ``"key=v1,v2,..."``, e.g. ``["lr=0.1,0.5", "hidden=48,96"]``. A value that is
        itself a list is written as JSON in brackets: ``"sizes=[64,48,10];[64,96,10]"`` (values
        separated by ``;`` when any value contains a comma).

    Returns
    -------
    dict
        key -> list of value strings (cast to the type of the scenario's default later), in the
        order given.

    Raises
    ------
    SweepError
        On a malformed item, a repeated key, an empty or repeated value, or the reserved keys
        ``seed`` (use ``--seeds``) and ``out`` (use ``--out``).
    """
    grid: dict[str, list[str]] = {}
    for item in items or ():
        if "=" not in item:
            raise SweepError(f"--grid {item!r} must look like key=v1,v2, e.g. --grid lr=0.1,0.5")
        key, text = (s.strip() for s in item.split("=", 1))
        if not key:
            raise SweepError(f"--grid {item!r} has no key before '='; write e.g. --grid lr=0.1,0.5")
        if key in _RESERVED_KEYS:
            hint = "--seeds 0,1,2" if key == "seed" else "--out DIR (each run's trace goes into DIR)"
            raise SweepError(f"--grid {item!r}: {key!r} is set by the sweep itself; use {hint}")
        if key in grid:
            raise SweepError(f"--grid key {key!r} is given twice; list all its values once: --grid {key}=a,b")
        sep = ";" if ";" in text else ","
        values = [v.strip() for v in text.split(sep)]
        if not text or any(not v for v in values):
            raise SweepError(f"--grid {item!r} has an empty value; write e.g. --grid {key}=0.1,0.5")
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {item!r} repeats a value; list each value once")
        grid[key] = values
    return grid


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    """Parse ``--seeds``: ``"0,1,2"``, a range ``"0-9"``, or a sequence of ints.

    Raises
    ------
    SweepError
        On anything that is not non-negative integers, or repeated seeds.
    """
    if isinstance(text, str):
        seeds: list[int] = []
        for part in (p.strip() for p in text.split(",")):
            m = re.fullmatch(r"(\d+)-(\d+)", part)
            try:
                seeds.extend(range(int(m[1]), int(m[2]) + 1) if m else [int(part)])
            except ValueError:
                raise SweepError(f"--seeds {text!r} must be comma-separated integers or a range, "
                                 f"e.g. 0,1,2 or 0-9") from None
    else:
        seeds = [int(s) for s in text]
    if not seeds or min(seeds) < 0:
        raise SweepError(f"--seeds {text!r} must name at least one non-negative seed, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text!r} repeats a seed; list each seed once")
    return seeds


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes
    ----------
    name
        File stem of its trace, state and log, e.g. ``"lr=0.1__seed=0"``.
    grid
        Grid key -> value string as given on the command line.
    seed
        The run's seed.
    config
        The complete configuration passed to the scenario's ``run()`` (``out`` is the trace).
    """

    name: str
    grid: dict[str, str]
    seed: int
    config: dict[str, Any] = field(repr=False)


def _run_name(grid: Mapping[str, str], seed: int) -> str:
    parts = [f"{k}={_NAME_SAFE.sub('-', v)}" for k, v in grid.items()] + [f"seed={seed}"]
    return "__".join(parts)


def _jsonable(obj: Any) -> Any:
    """Config and metrics as JSON-compatible values (numpy scalars/arrays, tuples, paths)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, range)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # strict JSON; NaN in results.csv
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _jsonable(obj.tolist())
    return str(obj)


def plan_runs(scenario_config: Mapping[str, Any], grid: Mapping[str, Sequence[str]], seeds: Sequence[int],
              overrides: Mapping[str, str], out_dir: str | Path) -> list[SweepRun]:
    """Every run of a sweep with its complete configuration.

    Parameters
    ----------
    scenario_config
        The scenario's ``CONFIG`` (defaults).
    grid
        Key -> value strings (see :func:`parse_grid`).
    seeds
        Seeds, each run once per grid cell.
    overrides
        ``--set`` key -> value strings applied to every run (grid values take precedence only
        on keys not in ``overrides``; a key in both is refused).
    out_dir
        The sweep's output folder; each run's ``out`` is ``out_dir/<name>.h5``.

    Returns
    -------
    list of SweepRun
        Grid cells in the order of the grid (last key fastest), seeds innermost.

    Raises
    ------
    ValueError
        Unknown keys or values that do not cast to the default's type (from
        :func:`neurosim.scenario.merge_config`), a key both in the grid and ``--set``, a scenario
        without ``seed``/``out`` settings, or two runs with the same file name.
    """
    from .scenario import merge_config

    for key in _RESERVED_KEYS:
        if key not in scenario_config:
            raise SweepError(f"the scenario's CONFIG has no {key!r} setting; a sweep sets it per run, add "
                             f"{key!r} to CONFIG and use config[{key!r}] in run()")
    both = sorted(set(grid) & set(overrides))
    if both:
        raise SweepError(f"{both} given both as --grid and --set; keep one of them")
    for key in ("seed", "out"):
        if key in overrides:
            raise SweepError(f"--set {key}=... is not allowed in a sweep; use --seeds and --out")
    out_dir = Path(out_dir)
    base = merge_config(scenario_config, dict(overrides))
    runs: list[SweepRun] = []
    names: set[str] = set()
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        cell = dict(zip(keys, values))
        for seed in seeds:
            name = _run_name(cell, seed)
            if name in names:
                raise SweepError(f"two runs would share the file name {name!r}: grid values differ only in "
                                 "characters that are not allowed in file names; choose other values")
            names.add(name)
            try:
                cfg = merge_config(base, {**cell, "seed": int(seed), "out": str(out_dir / f"{name}.h5")})
            except ValueError as err:  # name the option the user wrote
                raise SweepError(str(err).replace("--set", "--grid", 1)) from None
            runs.append(SweepRun(name, cell, int(seed), cfg))
    return runs


# --------------------------------------------------------------------------- one run (in a worker)
def _mkstemp(folder: Path, name: str) -> tuple[int, str]:
    """A temporary file next to ``folder/name``, with the permissions of an ordinary new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def _write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically: a temporary file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp(path.parent, path.name)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _metrics_of(returned: Any) -> dict[str, Any]:
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise TypeError(f"the scenario's run() returned {type(returned).__name__} {returned!r}; a sweep records "
                        "the dict of metrics run() returns (e.g. {'test_accuracy': 0.9}) or nothing")
    return {str(k): _jsonable(v) for k, v in returned.items()}


def execute_run(scenario: str, name: str, grid: dict[str, str], seed: int, config: dict[str, Any],
                out_dir: str, threads: int = 1) -> dict[str, Any]:
    """Run one scenario configuration and record its state; the task each Dask worker executes.

    Never raises for a failing scenario: the error is recorded in the returned state.

    Parameters
    ----------
    scenario
        Path of the scenario file (the workers must see the same file system).
    name, grid, seed, config
        The run (see :class:`SweepRun`).
    out_dir
        The sweep folder; the state goes to ``out_dir/runs/<name>.json`` (atomically) and the
        printed output to ``out_dir/logs/<name>.log``.
    threads
        Limit of BLAS/OpenMP threads inside the run (threadpoolctl), 1 by default.

    Returns
    -------
    dict
        The state: ``name``, ``grid``, ``seed``, ``status`` (``"ok"`` or ``"failed"``),
        ``error`` (``""`` or the exception's last line), ``traceback``, ``metrics``,
        ``task_wall_s`` (s), ``trace``, ``config``, ``host``, ``started``, ``finished``.
    """
    import platform

    from threadpoolctl import threadpool_limits

    from .scenario import load_scenario

    out = Path(out_dir)
    log_path = out / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "name": name, "grid": dict(grid), "seed": int(seed), "status": "failed", "error": "", "traceback": "",
        "metrics": {}, "task_wall_s": None, "trace": str(config.get("out", "")),
        "config": _jsonable(config), "host": platform.node(), "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "finished": "",
    }
    t0 = time.perf_counter()
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            with threadpool_limits(limits=threads):
                mod = load_scenario(scenario)
                state["metrics"] = _metrics_of(mod.run(dict(config)))
            state["status"] = "ok"
        except (Exception, SystemExit) as err:  # noqa: BLE001 - a failed run is data, not a crash of the sweep
            state["error"] = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
            state["traceback"] = traceback.format_exc()
            print(state["traceback"], file=log)
    state["task_wall_s"] = time.perf_counter() - t0
    state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_json_atomic(out / "runs" / f"{name}.json", state)
    return state


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    out_dir
        The sweep folder.
    states
        The state of every run of the sweep, in plan order.
    ran, skipped
        Names of the runs executed now, and of those skipped because they had finished before.
    scheduler, dashboard
        Scheduler address and dashboard link (``""`` for ``scheduler="synchronous"``).
    wall_s
        Wall time of the whole sweep, s.
    """

    out_dir: Path
    states: list[dict[str, Any]]
    ran: list[str]
    skipped: list[str]
    scheduler: str = ""
    dashboard: str = ""
    wall_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        """Names of the runs whose status is ``failed``."""
        return [s["name"] for s in self.states if s["status"] != "ok"]

    @property
    def results_csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def summary_md(self) -> Path:
        return self.out_dir / "summary.md"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_definition(out_dir: Path, definition: dict[str, Any], force: bool) -> None:
    path = out_dir / "sweep.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SweepError(f"{path} cannot be read ({err}); remove it or choose another --out") from None
        diffs = [f"{k}: {old.get(k)!r} -> {definition[k]!r}" for k in definition if old.get(k) != definition[k]]
        if diffs and not force:
            raise SweepError(
                f"--out {str(out_dir)!r} holds a different sweep ({'; '.join(diffs)}). Choose another --out, or pass "
                "--force to run this sweep into it (finished runs whose configuration is unchanged are kept)"
            )
    _write_json_atomic(path, definition)


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # missing, or unreadable: run it again


def _same_config(stored: Any, config: Mapping[str, Any]) -> bool:
    """Whether a finished run's stored configuration is this run's (``out`` aside: DIR may have moved)."""
    if not isinstance(stored, dict):
        return False
    return {k: v for k, v in stored.items() if k != "out"} == {k: v for k, v in _jsonable(config).items() if k != "out"}


def _failed_state(run: SweepRun, error: str) -> dict[str, Any]:
    return {"name": run.name, "grid": dict(run.grid), "seed": run.seed, "status": "failed", "error": error,
            "traceback": "", "metrics": {}, "task_wall_s": None, "trace": str(run.config["out"]),
            "config": _jsonable(run.config), "host": "", "pid": None, "started": "",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


@contextlib.contextmanager
def _exclusive(out_dir: Path):
    import fcntl

    fh = open(out_dir / ".sweep.lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"another neurosim sweep is running into {str(out_dir)!r}; wait for it or choose "
                             "another --out") from None
        yield
    finally:
        fh.close()


def default_workers() -> int:
    """Worker processes of the default local cluster: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, log: Callable[[str], None]):
    distributed = _require("distributed")
    if scheduler:
        client = distributed.Client(scheduler, timeout="30s")
        cluster = None
    else:
        n = workers or default_workers()
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           env=dict(PINNED_THREAD_ENV), dashboard_address=":0",
                                           silence_logs=40)
        client = distributed.Client(cluster)
    try:
        info = client.scheduler_info()
        n_workers = len(info.get("workers", {}))
        kind = "existing cluster" if scheduler else f"local cluster, {n_workers} workers x 1 thread"
        log(f"dask scheduler {client.scheduler.address} ({kind}); dashboard {client.dashboard_link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(scenario: str | Path, grid: Mapping[str, Sequence[str]] | None = None, seeds: Sequence[int] = (0,),
              out_dir: str | Path = "sweep", *, overrides: Mapping[str, str] | None = None,
              scheduler: str | None = None, workers: int | None = None, force: bool = False,
              log: Callable[[str], None] | None = None) -> SweepResult:
    """Run a scenario over grid x seeds, resumably, and write results.csv and summary.md.

    Parameters
    ----------
    scenario
        Path of the scenario file (``CONFIG`` and ``run(config)``; see :mod:`neurosim.scenario`).
    grid
        Key -> values (strings cast to the type of the scenario's default, or already-typed
        values); see :func:`parse_grid`.
    seeds
        Seeds; every grid cell runs once per seed.
    out_dir
        Output folder (created); see the module docstring for its contents.
    overrides
        ``--set`` settings applied to every run.
    scheduler
        ``None``: a local cluster of ``workers`` single-threaded processes; ``"tcp://host:port"``:
        an existing Dask scheduler; ``"synchronous"``: no Dask, one run after the other in this
        process (for debugging and as a baseline).
    workers
        Worker processes of the local cluster; default: the cores available (capped at the number
        of runs to do).
    force
        Run into an ``out_dir`` that holds a sweep with another definition.
    log
        Called with each progress line; default prints to stdout.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        Bad grid or seeds, or ``out_dir`` holding another sweep (without ``force``), or another
        sweep running into it.
    ImportError
        Dask or pandas not installed (extra ``neurosim[sweep]``).
    """
    from .scenario import load_scenario

    log = log or (lambda line: print(line, flush=True))
    _require("pandas")
    if scheduler != "synchronous":
        _require("distributed")
    if workers is not None and workers < 1:
        raise SweepError(f"--workers {workers} must be at least 1")
    scenario = Path(scenario).resolve()
    grid = {str(k): [str(v) for v in vs] for k, vs in (grid or {}).items()}
    seeds = parse_seeds(list(seeds))
    overrides = {str(k): str(v) for k, v in (overrides or {}).items()}
    mod = load_scenario(scenario)
    out_dir = Path(out_dir).resolve()
    runs = plan_runs(mod.CONFIG, grid, seeds, overrides, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    definition = {"scenario": str(scenario), "scenario_sha256": _sha256(scenario), "grid": grid, "seeds": seeds,
                  "set": overrides}
    t0 = time.perf_counter()
    with _exclusive(out_dir):
        _check_definition(out_dir, definition, force)
        states: dict[str, dict[str, Any]] = {}
        todo: list[SweepRun] = []
        for run in runs:
            old = _load_state(out_dir / "runs" / f"{run.name}.json")
            if old and old.get("status") == "ok" and _same_config(old.get("config"), run.config):
                states[run.name] = old
            else:
                todo.append(run)
        skipped = [r.name for r in runs if r.name in states]
        log(f"sweep {scenario.name}: {len(runs)} runs ({len(runs) // len(seeds)} grid cells x {len(seeds)} seeds) "
            f"into {out_dir}; {len(skipped)} finished before, {len(todo)} to run")
        sched_addr = dashboard = ""
        done = 0

        def report(state: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            states[state["name"]] = state
            metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in state["metrics"].items() if isinstance(v, (int, float)))
            what = metrics if state["status"] == "ok" else f"FAILED: {state['error']}"
            took = state["task_wall_s"]
            log(f"[{done}/{len(todo)}] {state['name']}: {what}" + (f" ({took:.1f} s)" if took is not None else ""))

        if todo and scheduler == "synchronous":
            for run in todo:
                report(execute_run(str(scenario), run.name, run.grid, run.seed, run.config, str(out_dir)))
        elif todo:
            distributed = _require("distributed")
            with _client(scheduler, min(workers or default_workers(), len(todo)) if not scheduler else None,
                         log) as client:
                sched_addr, dashboard = client.scheduler.address, client.dashboard_link
                futures = {client.submit(execute_run, str(scenario), run.name, run.grid, run.seed, run.config,
                                         str(out_dir), key=f"neurosim-run-{run.name}-{time.time_ns()}",
                                         pure=False): run for run in todo}
                for fut in distributed.as_completed(futures):
                    run = futures[fut]
                    try:
                        state = fut.result()
                    except Exception as err:  # noqa: BLE001 - the worker died (e.g. killed, out of memory)
                        state = _failed_state(run, f"{type(err).__name__}: {err}".splitlines()[0])
                        _write_json_atomic(out_dir / "runs" / f"{run.name}.json", state)
                    report(state)
        ordered = [states[r.name] for r in runs]
        write_results(ordered, list(grid), out_dir)
    result = SweepResult(out_dir, ordered, [r.name for r in todo], skipped, sched_addr, dashboard,
                         time.perf_counter() - t0)
    n_failed = len(result.failed)
    log(f"sweep done in {result.wall_s:.1f} s: {len(runs) - n_failed} ok, {n_failed} failed; "
        f"wrote {result.results_csv} and {result.summary_md}")
    return result


# --------------------------------------------------------------------------- tables
def results_frame(states: Sequence[Mapping[str, Any]], grid_keys: Sequence[str]):
    """One row per run: grid keys (typed as in the run's config), ``seed``, ``status``, ``error``,
    the metrics, ``task_wall_s`` (s), ``trace``, ``name``.

    Returns
    -------
    pandas.DataFrame
    """
    pd = _require("pandas")
    rows = []
    for s in states:
        row: dict[str, Any] = {k: s["config"].get(k, s["grid"].get(k)) for k in grid_keys}
        row.update(seed=s["seed"], status=s["status"], error=s["error"])
        for k, v in s["metrics"].items():
            row[k if k not in row else f"metric_{k}"] = v
        row.update(task_wall_s=s["task_wall_s"], trace=Path(s["trace"]).name, name=s["name"])
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(frame, grid_keys: Sequence[str], title: str = "") -> str:
    """Mean ± sd (sample standard deviation, ``ddof=1``) of every numeric metric per grid cell.

    Parameters
    ----------
    frame
        :func:`results_frame`.
    grid_keys
        Columns that define a cell.

    Returns
    -------
    str
        A markdown document with one table; ``n`` counts finished runs out of all runs of a cell.
    """
    pd = _require("pandas")
    skip = set(grid_keys) | {"seed", "status", "error", "trace", "name"}
    metric_cols = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    ok = frame[frame["status"] == "ok"]
    keys = list(grid_keys)
    lines = [f"# Sweep summary{': ' + title if title else ''}", "",
             "Mean ± sd over seeds (sample sd; runs that failed are left out and counted in `ok/runs`).", ""]
    header = keys + ["ok/runs"] + metric_cols
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for cell, sub in groups:
        cell = cell if isinstance(cell, tuple) else (cell,)
        good = ok.loc[ok.index.intersection(sub.index)]
        cells = [str(v) for v in cell] + [f"{len(good)}/{len(sub)}"]
        for col in metric_cols:
            vals = pd.to_numeric(good[col], errors="coerce").dropna()
            if len(vals) == 0:
                cells.append("-")
            elif len(vals) == 1:
                cells.append(f"{vals.iloc[0]:.4g}")
            else:
                cells.append(f"{vals.mean():.4g} ± {vals.std(ddof=1):.2g}")
        lines.append("| " + " | ".join(cells) + " |")
    failed = frame[frame["status"] != "ok"]
    if len(failed):
        lines += ["", "## Failed runs", ""] + [f"- `{r.name}`: {r.error}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


def write_results(states: Sequence[Mapping[str, Any]], grid_keys: Sequence[str], out_dir: Path) -> None:
    """Write ``results.csv`` and ``summary.md`` into ``out_dir`` (atomically, each)."""
    frame = results_frame(states, grid_keys)
    for fname, text in (("results.csv", frame.to_csv(index=False)),
                        ("summary.md", summary_markdown(frame, grid_keys, title=out_dir.name))):
        fd, tmp = _mkstemp(out_dir, fname)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out_dir / fname)
