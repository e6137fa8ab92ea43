"""The ``neurosim`` command line: run | inspect | plot | circuits | check."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r} must be comma-separated integers, e.g. 20,30,10") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes {text!r} needs at least two positive widths, e.g. 20,30,10")
    return sizes


def _option_value(text: str):
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


def build_parser() -> argparse.ArgumentParser:
    from .scenario import add_common_arguments

    p = argparse.ArgumentParser(prog="neurosim", description="continuous-time learning circuits")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a scenario script")
    r.add_argument("scenario", help="path to a scenario .py file")
    add_common_arguments(r)

    i = sub.add_parser("inspect", help="phase timing and convergence table of a trace (also while it is written)")
    i.add_argument("file")
    i.add_argument("--tail", type=int, default=10, help="show the last N phase executions")
    i.add_argument("--list", action="store_true", help="also list every dataset in the file")

    pl = sub.add_parser("plot", help="draw a figure from a trace")
    pl.add_argument("file")
    pl.add_argument("--what", required=True, choices=("traces", "convergence", "phases", "alignment"))
    pl.add_argument("-o", "--out", required=True, help="PNG file to write")

    sub.add_parser("circuits", help="list the learning circuits")

    c = sub.add_parser("check", help="one trial of a circuit against algebraic backprop")
    c.add_argument("circuit")
    c.add_argument("--sizes", type=_sizes, default=[20, 30, 10])
    c.add_argument("--activation", default="tanh")
    c.add_argument("--loss", default="mse", choices=("mse", "ce"))
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    c.add_argument("--backend", default="numpy")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="circuit option passed to build() or schedule(), e.g. --set gamma=0.1")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--dump", metavar="FILE.npz", help="write weights, feedback, inputs, targets and updates")
    c.add_argument("--against", choices=("brian2",), help="also run the circuit's phases in Brian2 and compare")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .trace import TraceError

    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError, FloatingPointError,
            TraceError) as err:
        print(f"neurosim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from .scenario import run_file

        run_file(args.scenario, args)
        return 0
    if args.command == "inspect":
        from .trace import load_trace

        with load_trace(args.file) as tf:
            a = tf.attrs
            print(f"{args.file}: scenario {a.get('scenario')!r}, backend {a.get('backend')}, dtype {a.get('dtype')}, "
                  f"seed {a.get('seed')}, created {a.get('created')}")
            print(tf.phases.summary())
            if args.list:
                print()
                print(tf.list())
        return 0
    if args.command == "plot":
        from .plot import plot

        plot(args.file, args.what, args.out)
        print(f"wrote {args.out}")
        return 0
    if args.command == "circuits":
        from . import circuits

        for name, summary in circuits.available():
            print(f"{name:<22} {summary}")
        return 0
    if args.command == "check":
        from .check import run_check
        from .scenario import parse_set

        options = {k: _option_value(v) for k, v in parse_set(args.set).items()}
        report = run_check(args.circuit, sizes=args.sizes, activation=args.activation, loss=args.loss,
                           batch=args.batch, seed=args.seed, dtype=args.dtype, backend=args.backend, options=options)
        if args.against == "brian2":
            from .brian import compare_check

            report.comparisons["brian2"] = compare_check(args.circuit, report, options=options)
        if args.dump:
            import numpy as np

            np.savez(args.dump, **report.arrays)
        print(json.dumps(report.as_dict(), indent=1) if args.json else report.table())
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
