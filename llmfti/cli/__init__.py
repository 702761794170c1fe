"""The `llmfti` command line: thin typer commands that call the library.

    llmfti --help
    llmfti ingest docs/ --feature-group docs --json
    llmfti fg search docs "how do I ...?" -k 5
    llmfti finetune --config configs/finetune/smollm2-demo.yaml --set train.max_steps=50

Every verb takes `--json` and then prints exactly one JSON document on stdout; progress bars and
logs go to stderr. Errors exit non-zero with a message (and a JSON error document with --json).
Heavy libraries are imported inside commands so `llmfti --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from llmfti.cli import batch_cmd, deploy_cmd, eval_cmd, fg_cmd, finetune_cmd, ingest_cmd, models_cmd, monitor_cmd, records_cmd, serve_cmd, td_cmd
from llmfti.cli.help_format import hide_flag_types
from llmfti.cli.output import fail

hide_flag_types()
app = typer.Typer(
    name="llmfti",
    help="LLM and RAG systems on the feature/training/inference architecture.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    home: str = typer.Option(None, "--home", envvar="LLMFTI_HOME", help="Project home (LanceDB + artifacts). Default ./.llmfti"),
):
    """Feature pipelines (ingest, fg), models (models), fine-tuning (finetune) and more. Set the project home with --home or LLMFTI_HOME."""
    ctx.obj = {"home": home}


app.command("ingest", help=ingest_cmd.__doc__)(ingest_cmd.ingest)
app.command("finetune", help=finetune_cmd.__doc__)(finetune_cmd.finetune)
app.add_typer(fg_cmd.app, name="fg")
app.add_typer(records_cmd.app, name="records")
app.add_typer(td_cmd.app, name="td")
app.add_typer(models_cmd.app, name="models")
app.command("deploy")(deploy_cmd.deploy)
app.command("rollback")(deploy_cmd.rollback)
app.add_typer(deploy_cmd.deployments_app, name="deployments")
app.command("serve")(serve_cmd.serve)
app.command("ask")(serve_cmd.ask)
app.command("logs")(serve_cmd.logs)
app.command("replay")(serve_cmd.replay)
app.command("eval")(eval_cmd.eval_)
app.command("monitor")(monitor_cmd.monitor)
app.command("batch-infer")(batch_cmd.batch_infer)


def main() -> None:
    """Run the CLI. Usage errors, like library errors, honour --json: one JSON error document on stdout."""
    import json
    import os

    from llmfti.errors import LlmftiError
    from llmfti.logs import configure_logging

    # Before transformers is imported anywhere: no "Loading weights" bars on every `ask` (LLMFTI_LOG_LEVEL=debug shows them).
    if os.environ.get("LLMFTI_LOG_LEVEL", "").lower() != "debug":
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    configure_logging()
    try:  # typer >= 0.2x vendors its own click; older typers use click itself
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    json_mode = "--json" in sys.argv
    try:
        # standalone_mode=False hands us click's usage errors instead of printing and exiting.
        rc = typer.main.get_command(app).main(prog_name="llmfti", standalone_mode=False)
    except LlmftiError as exc:
        fail(exc, json_mode=json_mode)
    except cx.UsageError as exc:
        if json_mode and not isinstance(exc, getattr(cx, "NoArgsIsHelpError", ())):
            sys.stdout.write(json.dumps({"error": exc.format_message(), "type": "UsageError"}) + "\n")
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except (KeyboardInterrupt, getattr(cx, "Abort", KeyboardInterrupt)):
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(rc if isinstance(rc, int) else 0)
