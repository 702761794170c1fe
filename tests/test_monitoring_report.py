"""The monitoring report renders in a real browser: headless Chromium screenshots it and the plots
are on the screen (not a blank page, not broken images).

Chromium is part of the test environment (.ci/run installs Debian's `chromium`): without it this
test FAILS, saying how to install it. Set LLMFTI_NO_BROWSER=1 to skip it deliberately.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from agent_fixtures import deploy, make_home
from test_monitoring_pipeline import T0, log_rows

BLUE = np.array([0x2E, 0x86, 0xDE]) / 255.0  # llmfti.monitoring.plots.CURRENT: the window's bars and points


def chromium() -> str:
    if os.environ.get("LLMFTI_NO_BROWSER") == "1":
        pytest.skip("LLMFTI_NO_BROWSER=1: browser rendering test skipped on purpose")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed to check the monitoring report renders: `apt-get install -y chromium` "
                "(.ci/run installs it), or set LLMFTI_NO_BROWSER=1 to skip this test")


def screenshot(browser: str, html: Path, out: Path, profile: Path) -> np.ndarray:
    from matplotlib.image import imread

    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1200,2000",
           html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return imread(str(out))[:, :, :3]  # RGB floats in [0, 1]


def test_report_plots_show_in_headless_chromium(tmp_path):
    browser = chromium()
    home = make_home(tmp_path)
    deploy(home, tmp_path, name="docs-qa")
    log_rows(home, ["loops", "with", "generators"], 90, T0, seed=1)
    log_rows(home, ["cooking"], 90, T0 + timedelta(days=1), seed=2, bad_topic="cooking", slow_stage="generate")
    from llmfti.pipelines.monitoring import monitor

    run = monitor(home, "docs-qa", since=T0 + timedelta(days=1), until=T0 + timedelta(days=2),
                  baseline=f"window:{T0.isoformat()}..{(T0 + timedelta(days=1)).isoformat()}", permutations=100)
    report = run.write_report(tmp_path / "monitor.html")
    html = report.read_text()
    assert len(re.findall(r"<img id='plot-(\w+)'", html)) >= 5
    # The same page without its images: what the plots add on screen is the difference.
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<img [^>]*>", "", html))

    full = screenshot(browser, report, tmp_path / "full.png", tmp_path / "profile-a")
    empty = screenshot(browser, bare, tmp_path / "bare.png", tmp_path / "profile-b")
    assert full.shape[0] >= 1500 and full.shape[1] >= 1000, full.shape

    def non_white(img):
        return int((img.min(axis=2) < 0.9).sum())

    def plot_blue(img):
        return int((np.abs(img - BLUE).max(axis=2) < 0.12).sum())

    # Plots are on screen: many more non-white pixels than the text and tables alone, most of them
    # the plots' own colour, which nothing else on the page uses.
    assert non_white(full) - non_white(empty) > 50_000, (non_white(full), non_white(empty))
    assert plot_blue(full) > 20_000 and plot_blue(empty) < 500, (plot_blue(full), plot_blue(empty))
    # The first plot (requests over time) sits right under the volume table: its rows are mostly ink.
    rows_with_blue = np.flatnonzero((np.abs(full - BLUE).max(axis=2) < 0.12).sum(axis=1) > 50)
    assert len(rows_with_blue) > 150
