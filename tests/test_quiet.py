"""What a newcomer sees is ours: no lance deprecation chatter on hybrid search, no weight-loading
bars on `ask`, no setuptools deprecation warning when the package is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_fixtures import deploy, make_home

REPO = Path(__file__).resolve().parents[1]


def _llmfti(home, *args):
    env = {**os.environ, "LLMFTI_HOME": str(home)}
    env.pop("LLMFTI_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "llmfti", *args], capture_output=True, text=True, env=env, timeout=300)


def test_hybrid_search_and_ask_print_no_library_noise(tmp_path):
    home = make_home(tmp_path)
    deploy(home, tmp_path, force=True)
    search = _llmfti(home, "fg", "search", "docs", "context manager", "--hybrid", "-k", "2")
    assert search.returncode == 0, search.stderr
    assert "WARN" not in search.stderr and "Deprecation" not in search.stderr, search.stderr
    ask = _llmfti(home, "ask", "docs-qa", "What does with do?")
    assert ask.returncode == 0, ask.stderr
    assert "Loading weights" not in ask.stderr and "it/s]" not in ask.stderr, ask.stderr


@pytest.mark.slow
def test_building_the_package_prints_no_deprecation_warning_and_installs_one_namespace(tmp_path):
    import shutil
    import zipfile

    src = tmp_path / "src"  # build from a copy: setuptools writes build/ next to the sources
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        shutil.copy(REPO / name, src / name)
    for name in ("llmfti", "pipelines", "agents"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "deprecated" not in (out.stdout + out.stderr).lower(), out.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("llmfti-*.whl"))).namelist()
    assert "llmfti/pipelines/feature.py" in names and "llmfti/agents/app.py" in names
    assert not [n for n in names if n.split("/")[0] in ("pipelines", "agents", "examples", "tests")]
