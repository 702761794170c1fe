"""The layout is enforced, not hoped for: import-linter's contracts (pyproject.toml) hold on the layout
as installed (pipelines/ and agents/ inside the llmfti package), a deliberately inverted import fails
them, no package has an import cycle among its children, every package folder is installed, and the
top-level names `pipelines` and `agents` are never importable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = {"pipelines": "llmfti/pipelines", "agents": "llmfti/agents"}


def installed_layout(dest: Path) -> Path:
    """The package tree as a wheel installs it: llmfti/ with pipelines/ and agents/ mapped inside."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "llmfti", dest / "llmfti", ignore=ignore)
    for src, target in MAPPED.items():
        shutil.copytree(REPO / src, dest / target, ignore=ignore)
    return dest


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_hold(tmp_path):
    result = lint_imports(installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, inverted",
    [
        ("llmfti/store/feature_group.py", "import llmfti.pipelines.feature"),  # core -> pipelines
        ("llmfti/registry/deployments.py", "import llmfti.agents.app"),  # core -> the service
        ("pipelines/feature.py", "import llmfti.pipelines.training"),  # one pipeline -> another
        ("llmfti/config/deployments.py", "import llmfti.models.generation"),  # the config <-> models cycle of 0.1
    ],
)
def test_an_inverted_import_breaks_the_contracts(tmp_path, module, inverted):
    root = installed_layout(tmp_path)
    for src, target in MAPPED.items():
        module = module.replace(f"{src}/", f"{target}/", 1) if module.startswith(f"{src}/") else module
    path = root / module
    path.write_text(path.read_text() + f"\n\ndef _inverted():\n    {inverted}\n")  # even a lazy import counts
    result = lint_imports(root)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout


def test_no_package_has_an_import_cycle_among_its_children(tmp_path):
    root = installed_layout(tmp_path)
    script = r"""
import grimp, json
g = grimp.build_graph("llmfti", cache_dir=None)
cycles = []
for pkg in sorted(m for m in g.modules if g.find_children(m)):
    kids = sorted(g.find_children(pkg))
    edges = {a: {b for b in kids if a != b and g.direct_import_exists(importer=a, imported=b, as_packages=True)} for a in kids}
    def reach(a):
        seen, todo = set(), [a]
        while todo:
            for b in edges[todo.pop()]:
                if b not in seen:
                    seen.add(b); todo.append(b)
        return seen
    r = {a: reach(a) for a in kids}
    cycles += sorted({" <-> ".join(sorted((a, b))) for a in kids for b in r[a] if a != b and a in r[b]})
print(json.dumps(cycles))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"import cycles: {out.stdout}"


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("llmfti", "llmfti"), ("pipelines", "llmfti.pipelines"), ("agents", "llmfti.agents")):
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top).parts
            found.add(".".join((name, *rel)))
    assert found == listed


@pytest.mark.parametrize("name", ["pipelines", "agents"])
def test_top_level_names_are_not_taken(name):
    """`agents` is another SDK's import name: llmfti installs only under its own namespace."""
    out = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and f"import llmfti.{name}" in out.stderr
    ok = subprocess.run([sys.executable, "-c", f"import llmfti.{name}"], cwd="/", capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
