"""The CLI with hostile stored text and bad invocations: rich markup in stored text is shown, not
parsed; `logs --since` filters; `deploy` exit codes reach the shell as real process exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from typer.testing import CliRunner

from agent_fixtures import make_home
from llmfti.cli import app

runner = CliRunner()
HOSTILE = "[/x] closing tag [bold]nope"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("clihard"))


def _log_rows(home, rows):
    from llmfti.store import FeatureStore
    from llmfti.store.inference_log import InferenceLog

    log = InferenceLog(FeatureStore(home))
    for r in rows:
        log.append(r)
    log.close()


def _row(request_id, when, question, output="ok"):
    return {"request_id": request_id, "time": when.isoformat(), "deployment": "qa", "deployment_version": 1, "model": "tiny:1",
            "feature_group": "docs:1", "commit": 1, "request": {"question": question}, "features": {}, "retrieved": [],
            "prompt_fingerprint": "x", "prompt_text": None, "output": output, "prompt_tokens": 1, "completion_tokens": 1,
            "timings_ms": {"total": 1.0}, "status": "ok", "error": ""}


def test_stored_markup_is_shown_not_parsed(home):
    from llmfti.store import FeatureStore
    from llmfti.store.feature_store import QUARANTINE

    now = datetime.now(timezone.utc)
    _log_rows(home, [_row("r-markup", now, HOSTILE, output=HOSTILE)])
    res = runner.invoke(app, ["--home", str(home), "logs", "qa"])
    assert res.exit_code == 0, res.output
    assert "[/x]" in res.stdout

    FeatureStore(home).system_table(QUARANTINE).add({
        "run_id": "r1", "feature_group": "docs:1", "source": f"{HOSTILE}.md", "reason": "unparseable", "detail": HOSTILE,
        "raw": "", "quarantined_at": now})
    res = runner.invoke(app, ["--home", str(home), "fg", "quarantine", "docs"])
    assert res.exit_code == 0, res.output
    assert "[/x]" in res.stdout and "[bold]nope" in res.stdout


def test_logs_since_filters_and_orders_newest_first(home):
    now = datetime.now(timezone.utc)
    _log_rows(home, [_row("r-old", now - timedelta(days=3), "old"), _row("r-mid", now - timedelta(hours=2), "mid"),
                     _row("r-new", now - timedelta(minutes=1), "new")])
    since = (now - timedelta(days=1)).isoformat()
    res = runner.invoke(app, ["--home", str(home), "logs", "qa", "--since", since, "--json"])
    assert res.exit_code == 0, res.output
    ids = [r["request_id"] for r in json.loads(res.stdout)["rows"]]
    assert "r-old" not in ids and ids.index("r-new") < ids.index("r-mid")
    bad = subprocess.run([sys.executable, "-m", "llmfti", "--home", str(home), "logs", "qa", "--since", "yesterday", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and json.loads(bad.stdout)["type"] == "ConfigError"


def test_deploy_exit_codes_are_process_exit_codes(home, tmp_path):
    cfg = tmp_path / "qa.yaml"
    cfg.write_text(yaml.safe_dump({"name": "qa-exit", "model": "tiny:1", "feature_group": "docs:1", "retrieval": {"k": 2}}))
    env = {**os.environ, "LLMFTI_HOME": str(home)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "llmfti", *args], capture_output=True, text=True, env=env, timeout=300)

    no_eval = run("deploy", str(cfg), "--json")
    assert no_eval.returncode == 4 and json.loads(no_eval.stdout)["type"] == "IncompatibleError"
    no_reason = run("deploy", str(cfg), "--force", "--json")
    assert no_reason.returncode == 2 and "--reason" in json.loads(no_reason.stdout)["error"]
    assert "Traceback" not in no_eval.stderr + no_reason.stderr
