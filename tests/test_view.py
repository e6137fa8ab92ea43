"""``neurosim view``: what the page draws, and the page itself in a real browser while a run writes.

The browser test drives Debian's chromium (``apt-get install chromium``) through Playwright
(``pip install playwright``; no browser download needed). It is skipped, with the reason in the
test output, where either is missing.
"""
from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bokeh")

from neurosim.trace import load_trace  # noqa: E402
from neurosim.view import collect, free_port  # noqa: E402

HERE = Path(__file__).parent
WRITER = HERE / "_slow_writer.py"
CHROMIUM = next((p for p in (os.environ.get("NEUROSIM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).is_file()), None)


def _writer_module():
    spec = importlib.util.spec_from_file_location("_slow_writer", WRITER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("view") / "fa.h5"
    _writer_module().main(str(out), pause_s=0.0)
    return out


def test_collect_draws_what_the_trace_holds(written):
    with load_trace(written) as tf:
        data = collect(tf)
        phases = tf.phases
        metrics = tf.metrics()
        last_forward = tf.convergence("forward")[-1]
    assert data["duration"]["label"] == ["forward", "backward", "learn"]
    m = phases["phase"] == "forward"
    np.testing.assert_array_equal(data["duration"]["xs"][0], phases["trial"][m])
    np.testing.assert_allclose(data["duration"]["ys"][0], (phases["end_ms"] - phases["start_ms"])[m])
    np.testing.assert_array_equal(data["steps"]["ys"][0], phases["steps"][m])
    assert "learn" not in data["residual"]["label"]  # residual 0 has no place on a log axis
    np.testing.assert_allclose(data["latest"]["ys"][0], last_forward.max(axis=1))
    assert data["metrics"]["label"] == ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    np.testing.assert_allclose(data["metrics"]["ys"][3], metrics["test_accuracy"][1])
    assert "W2/B_vs_Wt" in data["angles"]["label"]
    np.testing.assert_allclose(data["angles"]["ys"][data["angles"]["label"].index("W2/B_vs_Wt")],
                               metrics["angle/W2/B_vs_Wt"][1])
    assert data["n_trials"] == 12 and "12 trials" in data["status"]


def test_bad_options_are_refused(capsys):
    from neurosim.cli import main

    assert main(["view", "x.h5", "--refresh-ms", "5"]) == 2
    assert "--refresh-ms 5 is too short" in capsys.readouterr().err
    assert main(["view", "x.h5", "--port", "70000"]) == 2


def _wait(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def _colour_pixels(png: bytes, rgb: tuple[int, int, int]) -> int:
    """Pixels of a screenshot within a few levels of ``rgb``."""
    import matplotlib.image as mpimg

    img = (mpimg.imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(int)
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= 40).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium); "
                                             "the live view is not tested in a browser here")
def test_page_shows_plots_and_follows_a_run_while_it_writes(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    trace = tmp_path / "live.h5"
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "neurosim.cli", "view", str(trace), "--port", str(port),
                               "--refresh-ms", "250"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env)
    writer = None
    try:
        line = server.stdout.readline()
        assert f"serving http://127.0.0.1:{port}/" in line, line + (server.stdout.read() if server.poll() else "")
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
            page.get_by_text("waiting for").first.wait_for(timeout=30_000)  # opened before the run starts

            writer = subprocess.Popen([sys.executable, str(WRITER), str(trace), "0.6"], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)

            def n_trials() -> int:
                return page.evaluate("() => { const s = Bokeh.documents[0].get_model_by_name('duration');"
                                     " return s.data.xs.length ? s.data.xs[0].length : 0 }")

            first = _wait(lambda: n_trials() >= 2, 90, "the first trials on the page")
            figures = page.locator(".bk-Figure")
            assert figures.count() == 6
            shot_before = figures.nth(0).screenshot()
            assert _colour_pixels(shot_before, (31, 119, 180)) > 50  # the blue 'forward' line is drawn
            more = _wait(lambda: (n := n_trials()) > first + 2 and n, 90, "more trials while the run writes")
            assert writer.poll() is None or more < 12  # it grew while the writer was still running
            writer.wait(timeout=120)
            assert writer.returncode == 0, writer.stdout.read()
            _wait(lambda: n_trials() == 12, 30, "all 12 trials")
            assert figures.nth(0).screenshot() != shot_before  # the plot itself was redrawn
            page.get_by_text("12 trials, 36 phase executions").first.wait_for(timeout=30_000)  # the status line
            labels = page.evaluate("() => ['metrics', 'angles', 'latest'].map("
                                   "k => Bokeh.documents[0].get_model_by_name(k).data.label)")
            assert labels[0] == ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
            assert "W2/B_vs_Wt" in labels[1] and labels[2] == ["forward", "backward"]
            for k in (2, 3, 4, 5):  # convergence, metrics and angles plots are drawn
                assert _colour_pixels(figures.nth(k).screenshot(), (31, 119, 180)) > 20, k
            browser.close()
    finally:
        for proc in (writer, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
