"""The ``neurosim`` command line: run | inspect | plot | circuits | check | sweep | export | view.

Every command reports a problem as one line on stderr (``neurosim CMD: error: ...``) and exits
with status 2 (bad input, damaged or locked file) or 1 (``check`` failed its tolerance,
``inspect`` could read only part of a damaged file); ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

#: Exit status of a command that ran but found a failure (check over tolerance, damaged trace).
EXIT_FAILED = 1
#: Exit status of bad input: unknown options, missing or unreadable files, refused outputs.
EXIT_ERROR = 2


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r} must be comma-separated integers, e.g. 20,30,10") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes {text!r} needs at least two positive widths, e.g. 20,30,10")
    return sizes


def _units(text: str) -> list[int]:
    try:
        units = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--units {text!r} must be comma-separated unit indices, e.g. 0,1,5") from None
    if not units or min(units) < 0:
        raise argparse.ArgumentTypeError(f"--units {text!r} must list unit indices >= 0, e.g. 0,1,5")
    return units


def _trial(text: str) -> int | str:
    if text in ("last", "all"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--trial {text!r} must be a trial number, 'last' or 'all'") from None


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    return text


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``neurosim`` and its subcommands."""
    from .scenario import add_common_arguments

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")

    p = argparse.ArgumentParser(prog="neurosim", description="continuous-time learning circuits")
    p.add_argument("--version", action="version", version=f"neurosim {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", parents=[common], help="run a scenario script")
    r.add_argument("scenario", help="path to a scenario .py file")
    add_common_arguments(r)

    i = sub.add_parser("inspect", parents=[common],
                       help="phase timing and convergence table of a trace (also while it is written)")
    i.add_argument("file")
    i.add_argument("--tail", type=int, default=10, help="show the last N phase executions")
    i.add_argument("--list", action="store_true", help="also list every dataset in the file")
    i.add_argument("--json", action="store_true", help="print header, per-phase table and datasets as JSON")

    pl = sub.add_parser("plot", parents=[common], help="draw a figure from a trace")
    pl.add_argument("file")
    pl.add_argument("--what", required=True, choices=("traces", "convergence", "phases", "alignment", "maps"))
    pl.add_argument("--time-ms", type=float, help="maps: the sample nearest this simulated time (default: the last)")
    pl.add_argument("-o", "--out", required=True,
                    help="figure to write; the format follows the suffix (.png, .pdf, .svg ...)")
    pl.add_argument("--trial", type=_trial,
                    help="trial number, 'last' or 'all' (traces: default last; convergence: default the last 20 "
                         "executions of any trial)")
    pl.add_argument("--population", action="append", metavar="NAME",
                    help="only this population (repeat for several; traces and convergence)")
    pl.add_argument("--units", type=_units, metavar="I,J,...", help="traces: only these recorded unit indices")

    ci = sub.add_parser("circuits", parents=[common], help="list the learning circuits")
    ci.add_argument("--json", action="store_true", help="print the list as JSON")

    c = sub.add_parser("check", parents=[common], help="one trial of a circuit against algebraic backprop")
    c.add_argument("circuit")
    c.add_argument("--sizes", type=_sizes, default=[20, 30, 10])
    c.add_argument("--input", metavar="C,H,W", help="input maps of a convolutional network (with --layers)")
    c.add_argument("--layers", metavar="SPEC",
                   help='convolutional network instead of --sizes, e.g. "conv:6:5:pad=2,maxpool:2,conv:16:5,maxpool:2,'
                        'dense:120,dense:84,dense:10" (with --input)')
    c.add_argument("--activation", default="tanh")
    c.add_argument("--loss", default="mse", choices=("mse", "ce"))
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    c.add_argument("--backend", default="numpy")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="circuit option passed to build() or schedule(), e.g. --set gamma=0.1")
    c.add_argument("--tolerance", type=float, metavar="REL",
                   help="relative error the verdict allows (default: the circuit's declared tolerance, if any)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--dump", metavar="FILE.npz", help="write weights, feedback, inputs, targets and updates")
    c.add_argument("--against", choices=("brian2",), help="also run the circuit's phases in Brian2 and compare")
    _add_scaleout_commands(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from .trace import TraceError

    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError, FloatingPointError,
            TraceError) as err:
        if args.debug:
            traceback.print_exc()
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"neurosim {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0


def _inspect(args: argparse.Namespace) -> int:
    from .trace import TraceError, load_trace
    from .trace.lock import writer_pid

    with load_trace(args.file) as tf:
        damage: TraceError | None = None
        try:
            tf.check()
        except TraceError as err:
            damage = err
            tf.recover()
        a = tf.attrs
        writer = writer_pid(args.file)
        note = ("evaluation (test) batches are not traced: the phase log printed by a run "
                "(sim.log) counts more executions than this file")
        if args.json:
            keys = ("format", "format_version", "neurosim_version", "created", "scenario", "backend", "dtype", "seed")
            out = {"file": args.file, "header": {k: a.get(k) for k in keys},
                   "config": a.get("config"), "commits": tf.n_commits, "executions": len(tf.phases),
                   "trials": int(len(set(tf.phases["trial"].tolist()))), "phases": tf.phases.per_phase(),
                   "writer_pid": writer, "damage": damage.problem if damage else None, "note": note}
            if args.list:
                out["datasets"] = tf.datasets()
            print(json.dumps(out, indent=1))
        else:
            print(f"{args.file}: scenario {a.get('scenario')!r}, backend {a.get('backend')}, dtype {a.get('dtype')}, "
                  f"seed {a.get('seed')}, created {a.get('created')}")
            if writer is not None:
                print(f"process {writer} is still writing this file: run inspect again to see newer trials")
            print(tf.phases.summary(tail=args.tail))
            print(f"\nnote: {note}")
            if args.list:
                print()
                print(tf.list())
        trials = len(set(tf.phases["trial"].tolist()))
    if damage is not None:
        print(f"neurosim inspect: error: {damage}; shown above: the {tf.n_commits} commits ({trials} trials) "
              "that read back intact", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from .scenario import run_file

        run_file(args.scenario, args)
        return 0
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "plot":
        from .plot import plot

        plot(args.file, args.what, args.out, trial=args.trial, populations=args.population, units=args.units,
             time_ms=args.time_ms)
        print(f"wrote {args.out}")
        return 0
    if args.command == "circuits":
        from . import circuits
        from .table import format_table

        rows = circuits.available()
        if args.json:
            print(json.dumps([{"name": n, "summary": s} for n, s in rows], indent=1))
        else:
            print(format_table(["circuit", "summary"], rows, left={0, 1}))
        return 0
    if args.command == "check":
        from .check import run_check
        from .scenario import parse_set

        options = {k: _option_value(v) for k, v in parse_set(args.set).items()}
        report = run_check(args.circuit, sizes=args.sizes, activation=args.activation, loss=args.loss,
                           batch=args.batch, seed=args.seed, dtype=args.dtype, backend=args.backend, options=options,
                           tolerance=args.tolerance, layers=args.layers, input_shape=args.input)
        if args.against == "brian2":
            from .brian import compare_check

            report.comparisons["brian2"] = compare_check(args.circuit, report, options=options)
        if args.dump:
            import numpy as np

            np.savez(args.dump, **report.arrays)
        print(json.dumps(report.as_dict(), indent=1) if args.json else report.table())
        return EXIT_FAILED if report.passed is False else 0
    if args.command in _SCALEOUT_COMMANDS:
        return _dispatch_scaleout(args)
    raise AssertionError(args.command)


# ---------------------------------------------------------------------- sweep | export | view
_SCALEOUT_COMMANDS = ("sweep", "export", "view")


def _add_scaleout_commands(sub, common: argparse.ArgumentParser) -> None:
    """Subcommands beyond one run: ``sweep`` (Dask), ``export`` (NWB), ``view`` (live page)."""
    s = sub.add_parser("sweep", parents=[common],
                       help="run a scenario over a grid of settings x seeds as Dask tasks (resumable)")
    s.add_argument("scenario", help="path to a scenario .py file")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a setting and its values; repeat for more keys (the grid is their product)")
    s.add_argument("--seeds", default="0", help="seeds run for every grid cell, e.g. 0,1,2 or 0-9 (default 0)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="setting for every run")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for traces, results.csv and summary.md")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="existing Dask scheduler (tcp://host:8786); 'synchronous' runs in this process without Dask; "
                        "default: a local cluster")
    s.add_argument("--workers", type=int, help="worker processes of the local cluster (default: available cores)")
    s.add_argument("--force", action="store_true", help="run into a DIR that holds a sweep with another definition")

    e = sub.add_parser("export", parents=[common], help="convert a trace to another format (NWB)")
    e.add_argument("file", help="the trace (.h5)")
    e.add_argument("--nwb", required=True, metavar="OUT.nwb", help="NWB file to write")
    e.add_argument("--overwrite", action="store_true", help="replace OUT.nwb if it exists")

    v = sub.add_parser("view", parents=[common],
                       help="serve a live page that follows a trace while it is written")
    v.add_argument("file", help="the trace (.h5), which may not exist yet")
    v.add_argument("--port", type=int, default=5006, help="local port (default 5006; 0 picks a free one)")
    v.add_argument("--refresh-ms", type=int, default=1000, help="refresh period of the page, ms (default 1000)")
    v.add_argument("--show", action="store_true", help="also open the page in the default browser")


def _dispatch_scaleout(args: argparse.Namespace) -> int:
    if args.command == "sweep":
        from .scenario import parse_set
        from .sweep import parse_grid, parse_seeds, run_sweep

        result = run_sweep(args.scenario, parse_grid(args.grid), parse_seeds(args.seeds), args.out,
                           overrides=parse_set(args.set), scheduler=args.scheduler, workers=args.workers,
                           force=args.force)
        if result.failed:
            print(f"neurosim sweep: {len(result.failed)} run(s) failed (see {result.results_csv} and the logs in "
                  f"{result.out_dir / 'logs'}); rerun the same command to retry them", file=sys.stderr)
            return 1
        return 0
    if args.command == "export":
        from .export_nwb import export_nwb

        try:
            out = export_nwb(args.file, args.nwb, overwrite=args.overwrite)
        except FileExistsError as err:
            print(f"neurosim export: error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {out}")
        return 0
    if args.command == "view":
        from .view import serve

        serve(args.file, port=args.port, refresh_ms=args.refresh_ms, show=args.show)
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
