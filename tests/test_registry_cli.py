"""`llmfti models ...`: every verb prints exactly one JSON document with --json; check exits 4 naming the difference."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmfti.testing.tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def run(home, *args, code=0):
    from llmfti.cli import app
    from llmfti.errors import LlmftiError

    result = CliRunner().invoke(app, ["--home", str(home), "models", *args, "--json"])
    if isinstance(result.exception, LlmftiError):  # main() turns these into an exit code; emulate it
        assert code == result.exception.exit_code, result.exception
        return result.exception.to_dict()
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_models_cli_round_trip(tmp_path, tiny_dir):
    home = tmp_path / "home"
    out = run(home, "import", str(tiny_dir), "--name", "tiny", "--license", "mit")
    assert out["base_model"]["status"] == "imported" and out["model_version"]["ref"] == "tiny:1"
    assert run(home, "import", str(tiny_dir), "--name", "tiny")["base_model"]["status"] == "present"
    listing = run(home, "list")
    assert [b["name"] for b in listing["base_models"]] == ["tiny"] and [m["ref"] for m in listing["model_versions"]] == ["tiny:1"]
    shown = run(home, "show", "tiny:1")["model_version"]
    assert shown["lineage"]["base_model"]["name"] == "tiny" and shown["base"]["license"] == "mit"
    assert "# Model card: tiny:1" in run(home, "card", "tiny:1")["markdown"]
    assert run(home, "check", "tiny")["ok"] is True
    assert run(home, "set-status", "tiny:1", "staging")["status"] == "staging"
    run(home, "set-status", "tiny:1", "live", code=2)
    run(home, "show", "nope:1", code=3)


def test_check_names_the_difference_and_exits_4(tmp_path, tiny_dir):
    home = tmp_path / "home"
    run(home, "import", str(tiny_dir), "--name", "tiny")
    template = home / "artifacts" / "models" / "versions" / "tiny" / "1" / "tokenizer" / "chat_template.jinja"
    template.write_text(template.read_text() + " ")
    out = run(home, "check", "tiny:1", code=4)
    assert out["differences"] == ["chat_template"] and "chat template" in out["error"]


def test_console_script_prints_one_json_document_and_exit_code(tmp_path, tiny_dir):
    home = tmp_path / "home"
    run(home, "import", str(tiny_dir), "--name", "tiny")
    (home / "artifacts/models/versions/tiny/1/prompt_template.yaml").write_text("name: rag-default\nuser: '{question}'\n")
    proc = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "models", "check", "tiny:1", "--json"], capture_output=True, text=True)
    assert proc.returncode == 4, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one document
    assert doc["differences"] == ["prompt_template"] and "prompt template" in proc.stderr


def test_import_does_not_load_heavy_libraries_for_help():
    code = "import sys, llmfti.cli.models_cmd, llmfti.registry.model_version; print(sorted(m for m in ('torch','transformers','lancedb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.integration
def test_two_processes_registering_at_once_get_distinct_versions(tmp_path, tiny_dir):
    from llmfti.registry import ModelRegistry

    home = tmp_path / "home"
    ModelRegistry(home).import_base_model(str(tiny_dir), "tiny")
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from llmfti.registry import ModelRegistry
        from llmfti.testing.tiny_models import tiny_tokenizer
        from llmfti.transforms.model_dependent import PromptEncoder
        reg = ModelRegistry({str(home)!r})
        enc = PromptEncoder(tiny_tokenizer(), "rag-default")
        reg.get_base("tiny")  # open the tables before the race starts
        Path({str(tmp_path)!r}, "ready-" + sys.argv[1]).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        print(reg.register_version("race", base_model="tiny", encoder=enc).version)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    import time

    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)  # every process has imported its libraries and waits at the barrier
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    versions = sorted(int(o[0].strip().splitlines()[-1]) for o in outs)
    assert versions == [1, 2, 3]
    reg = ModelRegistry(home)
    assert [mv.version for mv in reg.versions("race")] == [1, 2, 3]
    assert all((Path(mv.path) / "config.json").is_file() for mv in reg.versions("race"))
