"""Every module imports on its own in a fresh interpreter: an import cycle or a missing import hidden
by the order in which the test suite happens to import things fails here. Also: `import llmfti` and
`llmfti --help` stay light (no torch, no lancedb)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def all_modules() -> list[str]:
    out = []
    for top, name in (("llmfti", "llmfti"), ("pipelines", "llmfti.pipelines"), ("agents", "llmfti.agents")):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO / top).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append(".".join((name, *parts)))
    return out


def _import(module: str) -> tuple[str, int, str]:
    # One fresh interpreter per module, run outside the repository so only the installed layout counts.
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd="/", capture_output=True, text=True, timeout=180)
    return module, proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.returncode else ""


def test_every_module_imports_on_its_own():
    modules = all_modules()
    assert "llmfti.models.generation" in modules and "llmfti.pipelines.inference.online" in modules
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [(m, err) for m, rc, err in pool.map(_import, modules) if rc]
    assert not failures, failures


def test_import_llmfti_and_help_stay_light():
    probe = "import sys, llmfti, llmfti.cli; print(sorted(m for m in ('torch', 'lancedb', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
