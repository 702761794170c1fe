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
