"""`--help` reads as a person expects (issue 27, finding 15): flags show no value type (typer 0.29
printed `--json <bool>`), options that take a value keep theirs."""

import re

from typer.testing import CliRunner

from llmfti.cli import app


def test_flags_show_no_value_type_and_valued_options_keep_theirs():
    out = CliRunner().invoke(app, ["td", "create", "--help"], env={"COLUMNS": "160"}).stdout
    assert "<bool>" not in out
    assert re.search(r"--json\s+Print one JSON document", out)
    assert re.search(r"--top-k\s+<int range>", out)
    for command in (["models", "show"], ["eval"], ["ingest"], ["records", "synthesize"]):
        assert "<bool>" not in CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"}).stdout


def test_models_show_prints_a_summary_not_json_without_the_flag(tmp_path):
    """Issue 27, finding 15: `models show` printed a wall of JSON inside the demo."""
    from agent_fixtures import make_home

    home = make_home(tmp_path)
    out = CliRunner().invoke(app, ["--home", str(home), "models", "show", "tiny:1"])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("tiny:1 (") and "prompt" in out.stdout and not out.stdout.lstrip().startswith("{")
    assert '"model_version"' in CliRunner().invoke(app, ["--home", str(home), "models", "show", "tiny:1", "--json"]).stdout
