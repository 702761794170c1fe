"""CLI verbs of the agent service: deploy, deployments, rollback, ask (in-process and --url), logs, replay."""

import json
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from agent_fixtures import make_home
from llmfti.cli import app

runner = CliRunner()


def cli(home, *args):
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    h = make_home(root)
    cfg = {"name": "qa", "model": "tiny:1", "feature_group": "docs:1", "retrieval": {"k": 2}, "generation": {"max_new_tokens": 6}}
    (root / "qa.yaml").write_text(yaml.safe_dump(cfg))
    (root / "qa2.yaml").write_text(yaml.safe_dump({**cfg, "commit": 1}))
    return h


def test_deploy_ask_logs_replay_rollback(home):
    first = cli(home, "deploy", str(home.parent / "qa.yaml"), "--force", "--reason", "cli test", "--json")
    assert first["version"] == 1 and first["checks"]["encoder_fingerprint"]
    answer = cli(home, "ask", "qa", "What does __exit__ do?", "--json")
    assert answer["versions"]["deployment"] == 1 and answer["citations"] and "prompt_text" not in answer
    human = cli(home, "ask", "qa", "loops?")
    assert "latency ms:" in human and "versions:" in human
    rows = cli(home, "logs", "qa", "--json")["rows"]
    assert answer["request_id"] in {r["request_id"] for r in rows}
    replayed = cli(home, "replay", answer["request_id"], "--json")
    assert replayed["identical"], replayed
    second = cli(home, "deploy", str(home.parent / "qa2.yaml"), "--force", "--reason", "pin commit", "--json")
    assert second["version"] == 2 and second["commit"] == "1"
    assert cli(home, "deployments", "list", "--json")["deployments"][0]["version"] == 2
    back = cli(home, "rollback", "qa", "--json")
    assert back["version"] == 1
    events = cli(home, "deployments", "history", "qa", "--json")["history"]
    assert [e["action"] for e in events] == ["deploy", "deploy", "rollback"]


def test_deploy_refusal_exits_non_zero_naming_the_mismatch(home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "model": "tiny:1", "feature_group": "docs:1", "max_prompt_tokens": 64}))
    out = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "deploy", str(bad), "--force", "--reason", "x", "--json"], capture_output=True, text=True)
    assert out.returncode == 4 and "budget" in out.stdout
    bad.write_text("name: bad\nmodel: tiny:1\nunknown_key: 1\n")
    out = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "deploy", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown_key" in out.stderr
