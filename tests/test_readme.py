"""The README is executable documentation: every `llmfti ...` command line names commands and options
that exist, every Python snippet runs on a fresh home, the exit-code table is the one in
llmfti.errors, and the two newcomer commands are the Makefile's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _command_lines() -> list[list[str]]:
    """Token lists of every `llmfti` invocation in the README's bash blocks (continuations joined)."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if "llmfti " not in line or line.startswith(("export", "source", "#")):
                continue
            tokens = shlex.split(line.split(">")[0])
            start = tokens.index("llmfti") + 1
            for alternative in " ".join(shlex.quote(t) for t in tokens[start:]).split(" | "):
                out.append([t.strip("[]") for t in shlex.split(alternative)])
    return out


def _is_group(cmd) -> bool:
    # typer vendors its own click: test the shape, not the class.
    return hasattr(cmd, "commands")


def _resolve(group, tokens: list[str], previous: list[str]):
    """(click command, option tokens) for an invocation; `a | b` alternatives reuse the previous group."""
    cmd, path = group, []
    for tok in tokens:
        if _is_group(cmd) and tok in cmd.commands:
            cmd, path = cmd.commands[tok], path + [tok]
        elif _is_group(cmd) and previous:
            cmd = group
            for p in previous[:-1]:
                cmd = cmd.commands[p]
            return _resolve(cmd, tokens, [])
        else:
            break
    return cmd, path


def test_every_readme_command_and_option_exists():
    import typer

    from llmfti.cli import app

    root = typer.main.get_command(app)
    lines = _command_lines()
    assert len(lines) > 30, "the README lost its command examples"
    previous: list[str] = []
    for tokens in lines:
        cmd, path = _resolve(root, tokens, previous)
        assert not _is_group(cmd), f"`llmfti {' '.join(tokens)}` does not name a command"
        previous = path or previous
        known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
        for tok in tokens:
            if tok.startswith("-") and not re.fullmatch(r"-\d+", tok):
                assert tok.split("=")[0] in known, f"`llmfti {' '.join(path)}` has no option {tok} (README: llmfti {' '.join(tokens)})"


def test_every_command_takes_json():
    """The README says so; `serve` prints its ready document (URL, deployments) with it."""
    import typer

    from llmfti.cli import app

    def walk(cmd, path):
        if _is_group(cmd):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    missing = [" ".join(p) for p, c in walk(typer.main.get_command(app), []) if not any("--json" in getattr(o, "opts", []) for o in c.params)]
    assert not missing, f"commands without --json: {missing}"
    assert "Every command takes `--json`" in README


def test_exit_code_table_matches_the_code():
    from llmfti.errors import EXIT_CODES

    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in README, f"README exit-code table lacks {code}"


def test_the_two_newcomer_commands_are_make_targets():
    makefile = (REPO / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.slow
def test_python_snippets_run_on_a_fresh_home(tmp_path):
    """Each ```python block runs, in order, in a fresh directory holding a small docs/ corpus; the
    registry snippet finds the embedded generator after `llmfti models pull-defaults`."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "with.md").write_text("# The with statement\n\nThe with statement wraps a block with a context manager.\n")
    (docs / "yield.md").write_text("# Generators\n\nGenerators yield values lazily, one at a time.\n")
    env = {**os.environ, "LLMFTI_HOME": str(tmp_path / ".llmfti"), "HF_HUB_OFFLINE": "1"}
    pull = subprocess.run([sys.executable, "-m", "llmfti", "models", "pull-defaults", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert pull.returncode == 0, pull.stderr
    blocks = _blocks("python")
    assert len(blocks) >= 2
    script = "\n".join(textwrap.dedent(b) for b in blocks) + "\nprint('README-SNIPPETS-OK')\n"
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "README-SNIPPETS-OK" in run.stdout, run.stderr[-3000:]


def test_every_error_class_exits_with_a_documented_code():
    """One table: every LlmftiError subclass anywhere in llmfti uses a code from EXIT_CODES, and codes
    6-8 each mean one thing (a training guard, a timeout, a failed backend)."""
    import importlib
    import pkgutil

    import llmfti
    from llmfti.errors import EXIT_CODES, LlmftiError

    for mod in pkgutil.walk_packages(llmfti.__path__, "llmfti."):
        if not mod.name.startswith(("llmfti.cli", "llmfti.testing")) and not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    for sub in ("pipelines.inference.online", "agents.app"):
        importlib.import_module(f"llmfti.{sub}")

    def walk(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    codes = {cls.__name__: cls.exit_code for cls in walk(LlmftiError)}
    assert set(codes.values()) <= set(EXIT_CODES), codes
    assert codes["TrainingGuardError"] == 6 and codes["GenerationTimeout"] == 7 and codes["BackendUnavailable"] == 8
    from llmfti.training.guards import TrainingGuardError

    guard_names = {TrainingGuardError.__name__} | {c.__name__ for c in walk(TrainingGuardError)}
    assert {n for n, c in codes.items() if c == 6} == guard_names  # 6 means a training guard, nothing else
