"""Live view of a trace in the browser: ``neurosim view TRACE [--port N]``.

A Bokeh server serves one page that follows a trace while another process writes it: the file is
read through :func:`neurosim.trace.load_trace` (SWMR, so only whole trials are seen) and
refreshed every ``refresh_ms``; the plots redraw when a new trial has been committed. The page
shows

- **phase timing**: simulated duration (ms) of every phase execution against the trial;
- **steps**: integration steps of every phase execution against the trial;
- **convergence per phase**: the final residual of every execution (log scale) and, for each
  phase with a convergence log, the residual trajectory of its latest execution (max over the
  logged populations) against the step;
- **metrics**: losses and accuracies against the epoch (train and test);
- **alignment angles**: metrics named ``angle/...`` (degrees) against the epoch.

The page may be opened before the trace exists; it waits for the writer. Bokeh is imported only
here (extra ``neurosim[view]``).
"""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["collect", "serve", "make_app"]

#: At most this many points per line; longer series are thinned evenly (the last point is kept).
MAX_POINTS = 4000
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")


def _require_bokeh():
    try:
        import bokeh  # noqa: F401
    except ImportError as err:
        raise ImportError(f"neurosim view needs bokeh, which is not installed ({err}); install the extra: "
                          'pip install "neurosim[view]"') from None


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    if len(x) > MAX_POINTS:
        idx = np.unique(np.append(np.linspace(0, len(x) - 1, MAX_POINTS).astype(int), len(x) - 1))
        x, y = x[idx], y[idx]
    return x.tolist(), y.tolist()


def _lines(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list]:
    """name -> (x, y) as the columns of a multi_line source: xs, ys, label, color."""
    xs, ys, labels, colors = [], [], [], []
    for i, (name, (x, y)) in enumerate(series.items()):
        tx, ty = _thin(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        xs.append(tx)
        ys.append(ty)
        labels.append(name)
        colors.append(_PALETTE[i % len(_PALETTE)])
    return {"xs": xs, "ys": ys, "label": labels, "color": colors}


def collect(tf) -> dict[str, Any]:
    """Everything the page draws, from an open trace, as plain lists.

    Parameters
    ----------
    tf : neurosim.trace.TraceFile
        The trace, at the commit to show (call ``tf.refresh()`` first to see new trials).

    Returns
    -------
    dict
        ``"duration"``, ``"steps"``, ``"residual"`` (per phase, against the trial),
        ``"latest"`` (per phase, residual of the latest execution against the step),
        ``"metrics"`` and ``"angles"`` (per metric name, against the epoch): each a dict of the
        multi-line columns ``xs``, ``ys``, ``label``, ``color``. Non-positive residuals are left
        out of the log-scale plots. ``"status"``: a one-line description (trials, executions,
        commits, epochs).
    """
    phases = tf.phases
    c = phases.columns
    names = list(phases.phase_names) + [p for p in dict.fromkeys(c["phase"].tolist()) if p not in phases.phase_names]
    duration, steps, residual, latest = {}, {}, {}, {}
    for name in names:
        m = c["phase"] == name
        if not m.any():
            continue
        trial = c["trial"][m]
        duration[name] = (trial, c["end_ms"][m] - c["start_ms"][m])
        steps[name] = (trial, c["steps"][m])
        res = c["residual"][m]
        ok = np.isfinite(res) & (res > 0)
        if ok.any():
            residual[name] = (trial[ok], res[ok])
    for name in tf.layout.convergence:
        if not tf.convergence_populations(name):
            continue
        runs = tf.convergence(name)
        if runs and len(runs[-1]):
            r = runs[-1].max(axis=1)
            ok = np.isfinite(r) & (r > 0)
            latest[name] = (np.arange(1, len(r) + 1)[ok], r[ok])
    metrics = tf.metrics()
    scores = {k: v for k, v in metrics.items() if not k.startswith("angle/")
              and any(s in k for s in ("loss", "accuracy", "error"))}
    angles = {k[len("angle/"):]: v for k, v in metrics.items() if k.startswith("angle/")}
    n_trials = int(np.unique(c["trial"]).size)
    epochs = f", epoch {int(c['epoch'].max())}" if len(c["epoch"]) else ""
    status = (f"{tf.path.name}: {n_trials} trials, {len(phases)} phase executions, {tf.n_commits} commits{epochs}; "
              f"updated {time.strftime('%H:%M:%S')}")
    return {"duration": _lines(duration), "steps": _lines(steps), "residual": _lines(residual),
            "latest": _lines(latest), "metrics": _lines(scores), "angles": _lines(angles), "status": status,
            "n_trials": n_trials, "n_commits": int(tf.n_commits)}


_PLOTS = (  # source name, title, x label, y label, y axis type
    ("duration", "Phase timing: simulated duration per execution", "trial", "duration (ms)", "linear"),
    ("steps", "Integration steps per execution", "trial", "steps", "linear"),
    ("residual", "Convergence: final residual per execution", "trial", "final residual", "log"),
    ("latest", "Convergence: latest relaxation of each phase", "step", "residual (max over populations)", "log"),
    ("metrics", "Training and test metrics", "epoch", "value", "linear"),
    ("angles", "Alignment angles", "epoch", "angle (degrees)", "linear"),
)


def _replaced(path: Path, inode: int | None) -> bool:
    try:
        return path.stat().st_ino != inode
    except FileNotFoundError:
        return True


def make_app(path: str | Path, refresh_ms: int = 1000):
    """The Bokeh application function (``doc -> None``) that follows ``path``."""
    _require_bokeh()
    from bokeh.layouts import column, gridplot
    from bokeh.models import ColumnDataSource, Div
    from bokeh.plotting import figure

    from .trace import TraceError, load_trace

    path = Path(path)

    def app(doc) -> None:
        status = Div(text=f"waiting for {path} ...", name="status", styles={"font-family": "monospace"})
        sources, figures = {}, []
        for key, title, xlabel, ylabel, ytype in _PLOTS:
            src = ColumnDataSource({"xs": [], "ys": [], "label": [], "color": []}, name=key)
            fig = figure(title=title, x_axis_label=xlabel, y_axis_label=ylabel, y_axis_type=ytype, height=300,
                         sizing_mode="stretch_width", name=f"fig_{key}", tools="pan,wheel_zoom,box_zoom,reset,save")
            fig.multi_line("xs", "ys", source=src, line_color="color", legend_field="label", line_width=1.5)
            fig.legend.location = "top_right"
            fig.legend.label_text_font_size = "8pt"
            sources[key] = src
            figures.append(fig)
        header = Div(text=f"<h2>neurosim live view</h2><p>{path.resolve()}</p>")
        doc.add_root(column(header, status, gridplot(figures, ncols=2, sizing_mode="stretch_width"),
                            sizing_mode="stretch_width"))
        doc.title = f"neurosim view: {path.name}"
        state: dict[str, Any] = {"tf": None, "commits": -1, "inode": None}

        def update() -> None:
            tf = state["tf"]
            try:
                if tf is not None and _replaced(path, state["inode"]):  # a new run writes to the same path
                    tf.close()
                    tf = state["tf"] = None
                    state["commits"] = -1
                if tf is None:
                    tf = state["tf"] = load_trace(path)
                    state["inode"] = path.stat().st_ino
                else:
                    tf.refresh()
            except (FileNotFoundError, ValueError, OSError, KeyError, TraceError) as err:  # not there yet, or begun
                if state["tf"] is not None:
                    state["tf"].close()
                state["tf"] = None
                status.text = (f"waiting for {path} ({type(err).__name__}: {str(err)[:120]}); "
                               f"{time.strftime('%H:%M:%S')}")
                return
            if tf.n_commits == state["commits"]:
                return
            state["commits"] = tf.n_commits
            data = collect(tf)
            for key, src in sources.items():
                src.data = data[key]
            status.text = data["status"]

        def closed(session_context) -> None:
            if state["tf"] is not None:
                state["tf"].close()

        update()
        doc.add_periodic_callback(update, int(refresh_ms))
        doc.on_session_destroyed(closed)

    return app


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(path: str | Path, port: int = 5006, refresh_ms: int = 1000, show: bool = False,
          address: str = "127.0.0.1") -> None:
    """Serve the live view of ``path`` until interrupted (Ctrl-C).

    Parameters
    ----------
    path
        The trace; it may not exist yet.
    port
        TCP port; 0 picks a free one. The URL is printed.
    refresh_ms
        How often the page looks for new commits, ms.
    show
        Also open the page in the default browser.
    address
        Interface to listen on; the default serves this machine only.

    Raises
    ------
    ValueError
        ``refresh_ms`` below 50 or a port out of range.
    ImportError
        Bokeh not installed (extra ``neurosim[view]``).
    """
    if int(refresh_ms) < 50:
        raise ValueError(f"--refresh-ms {refresh_ms} is too short; use 50 ms or more (default 1000)")
    if not 0 <= int(port) < 65536:
        raise ValueError(f"--port {port} is not a TCP port; use 1-65535, or 0 for a free one")
    app = make_app(path, refresh_ms)
    from bokeh.server.server import Server

    port = int(port) or free_port()
    hosts = [f"localhost:{port}", f"127.0.0.1:{port}", f"{address}:{port}"]
    server = Server({"/": app}, port=port, address=address, allow_websocket_origin=hosts, num_procs=1)
    server.start()
    url = f"http://{address}:{port}/"
    print(f"neurosim view: serving {url} (following {path}); Ctrl-C stops", flush=True)
    if show:
        server.io_loop.add_callback(server.show, "/")
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
