"""`llmfti td`: training datasets: create (point-in-time, encoded), show, list, recreate (verify).

    llmfti td create qa-train --from qa:1 --event-time-until 2026-01-01 --contexts docs:1@release-1 \\
        --top-k 4 --encoder rag-default --model SmolLM2-135M-Instruct --split 0.9 --seed 0
    llmfti td create qa-clean --from qa:1 --where "score_grounding >= 0.5 AND score_near_duplicate < 0.8" --model SmolLM2-135M-Instruct
    llmfti td create prefs --from prefs:1 --contexts docs:1 --model smollm2-python-qa:1      # preference pairs -> DPO
    llmfti td show qa-train:1
    llmfti td recreate qa-train:1      # rebuild from the lineage; exit 4 when the content hash differs
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmfti.cli.output import console, emit, esc, home_of, table

app = typer.Typer(help="Training datasets: create, show, list, recreate.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")
REF = typer.Argument(..., help="NAME:VERSION (or NAME for the latest version).")


def _datasets(ctx):
    from llmfti.store import FeatureStore

    return FeatureStore(home_of(ctx)).training_datasets


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name; the next version NAME:N is allocated."),
    from_: str = typer.Option(..., "--from", help="Records feature group FG[:VERSION] (--kind records: SFT examples; --kind preferences: preference pairs)."),
    where: Optional[str] = typer.Option(None, "--where", help="LanceDB SQL filter on the records at the pinned commit, e.g. \"score_grounding >= 0.5\" (recorded)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Records at this commit, tag or ingestion time (default: latest, pinned)."),
    until: Optional[str] = typer.Option(None, "--event-time-until", help="Keep records with event_time at or before this ISO-8601 time."),
    contexts: Optional[str] = typer.Option(None, "--contexts", help="Documents feature group to retrieve from: DOCS_FG or DOCS_FG:VERSION, optionally pinned with @COMMIT, @TAG or @TIME."),
    top_k: int = typer.Option(4, "--top-k", min=0, max=100, help="Contexts per example."),
    context_order: str = typer.Option("retrieval", "--context-order", help="retrieval: a record's own context stands where the deployment's "
                                      "retrieval ranks it (answers' [n] renumbered); given-first: always context [1]."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Prompt template name or YAML (default: the model version's, else rag-default)."),
    model: str = typer.Option(..., "--model", help="Model version NAME:N, registered base model NAME, or model folder (its tokenizer encodes)."),
    max_prompt_tokens: Optional[int] = typer.Option(None, "--max-prompt-tokens", min=1, help="Prompt budget (default: the model version's, else 1024)."),
    max_answer_tokens: Optional[int] = typer.Option(None, "--max-answer-tokens", min=2, help="Answer budget incl. EOS (default: the model version's, else 256)."),
    split: float = typer.Option(0.9, "--split", help="Share of examples in the train split (0 < split <= 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split hash."),
    description: str = typer.Option("", "--description", help="Free text stored with the dataset."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Retrieve contexts with hybrid search, as a deployment with retrieval.hybrid does."),
    on_demand: List[str] = typer.Option([], "--on-demand", help="On-demand feature computed per record as the deployment does (e.g. normalized_question); repeatable."),
    exclude_contexts_of: List[str] = typer.Option([], "--exclude-contexts-of", help="Never retrieve the documents this eval suite cites (repeatable)."),
    eval_suite: List[str] = typer.Option([], "--eval-suite", help="Report examples that overlap this eval suite's questions or passages (repeatable)."),
    refuse_eval_overlap: bool = typer.Option(False, "--refuse-eval-overlap", help="Exit 4 instead of creating a dataset that overlaps an --eval-suite."),
    json_out: bool = JSON,
):
    """Create a versioned training dataset: records at a pinned commit, contexts retrieved from a pinned
    documents commit, encoded with the model's prompt encoder (the prompts the agent builds at serving time)."""
    from pydantic import ValidationError

    from llmfti.errors import ConfigError
    from llmfti.store.training_datasets import TrainingDatasetSpec

    try:
        spec = TrainingDatasetSpec(
            name=name, source=from_, as_of=as_of, event_time_until=until, contexts=contexts, top_k=top_k, prompt_template=encoder,
            model=model, max_prompt_tokens=max_prompt_tokens, max_answer_tokens=max_answer_tokens, split=split, seed=seed, description=description,
            eval_suites=eval_suite, refuse_eval_overlap=refuse_eval_overlap, hybrid=hybrid, on_demand=on_demand,
            exclude_contexts_of=exclude_contexts_of, where=where, context_order=context_order,
        )
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    from llmfti.pipelines.training_dataset import create as create_dataset
    from llmfti.store import FeatureStore

    ds = create_dataset(FeatureStore(home_of(ctx)), spec)
    emit(ds.describe(), json_out, _render)


@app.command()
def show(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """Lineage of a dataset version: sources and commits, bounds, encoder, seed, split, content hash, rows."""
    emit(_datasets(ctx).get(ref).describe(), json_out, _render)


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = JSON):
    """Training datasets and their versions."""
    items = []
    for ds in _datasets(ctx).list():
        d = ds.describe()
        items.append({"ref": ds.ref, "records": d["records"], "contexts": d["contexts"], "rows": d["rows"]["total"],
                      "encoder_fingerprint": d["encoder"]["fingerprint"], "content_hash": ds.content_hash, "created_at": d["created_at"]})

    def render(data):
        t = table("dataset", "records", "contexts", "rows", "encoder", "content hash", "created")
        for i in data["training_datasets"]:
            r, c = i["records"], i["contexts"]
            t.add_row(i["ref"], f"{r['feature_group']}@{r['commit']}", f"{c['feature_group']}@{c['commit']}" if c else "-", str(i["rows"]),
                      i["encoder_fingerprint"][:12], i["content_hash"][:12], i["created_at"])
        console().print(t if data["training_datasets"] else "no training datasets yet: llmfti td create NAME --from FG --model MODEL")

    emit({"training_datasets": items}, json_out, render)


@app.command()
def recreate(ctx: typer.Context, ref: str = REF, json_out: bool = JSON):
    """Rebuild from the lineage only and compare the content hash; exit 4 (and name the first
    differing example) when it differs."""
    from llmfti.errors import IncompatibleError

    from llmfti.pipelines.training_dataset import recreate as recreate_dataset

    report = recreate_dataset(_datasets(ctx).get(ref))

    def render(r):
        out = console()
        if r["identical"]:
            out.print(f"[bold]{r['ref']}[/] recreated identically ({r['recreated_rows']} examples, content hash {r['content_hash'][:16]})")
        else:
            out.print(f"[bold red]{r['ref']} differs[/]: recorded {r['content_hash'][:16]}, recreated {str(r['recreated_content_hash'])[:16]}")
            out.print(f"  first difference: {esc(r['first_difference'])}")

    emit(report, json_out, render)
    if not report["identical"]:
        raise typer.Exit(IncompatibleError.exit_code)


def _render(d: dict) -> None:
    out = console()
    rows, e = d["rows"], d["encoder"]
    kind = "preference pairs" if d.get("kind") == "preferences" else "SFT examples"
    out.print(f"[bold]{d['ref']}[/] ({kind}) {esc(d['description'])}  created {d['created_at']}  table {d['table']}")
    r = d["records"]
    out.print(f"  records: {r['feature_group']} @ commit {r['commit']}" + (f" (as of {r['as_of']})" if r["as_of"] else "")
              + (f", event_time <= {d['event_time_until']}" if d["event_time_until"] else ""))
    if d.get("filter"):
        f = d["filter"]
        scorers = ", ".join(f"{c} = {v['scorer']} v{v['version']}" for c, v in f["scores"].items())
        out.print(f"  filter: {esc(f['where'])} ({rows.get('excluded_by_filter', 0)} records left out{'; ' + esc(scorers) if scorers else ''})")
    if d["contexts"]:
        c = d["contexts"]
        out.print(f"  contexts: {c['feature_group']} @ commit {c['commit']}, top {c['top_k']}, embedder {c['embedder']['id']}")
    out.print(f"  encoder: {e['prompt_template']} v{e['prompt_template_version']} with {e['model']['kind']} {e['model']['ref']}, "
              f"budget {e['max_prompt_tokens']}/{e['max_answer_tokens']}, fingerprint {e['fingerprint'][:16]}")
    out.print(f"  examples: {rows['total']} ({rows['train']} train, {rows['eval']} eval; split {d['split']}, seed {d['seed']}); "
              f"{rows['skipped']} skipped, {rows['excluded_by_event_time']} after the event-time bound, {rows['truncated_prompts']} prompts truncated")
    if d.get("records_lineage"):
        lin = d["records_lineage"]
        out.print(f"  records synthesized ({lin.get('method')}) from {lin['documents']['feature_group']} @ commit {lin['documents']['commit']}, "
                  f"excluding {esc(', '.join(lin['excluded']['suites']) or 'no suite')}")
    for ref, o in (d.get("eval_overlap") or {}).items():
        flag = "[bold red]OVERLAP[/]" if o["examples"] else "[green]no overlap[/]"
        out.print(f"  eval {esc(ref)}: {flag} ({o['questions']} questions, {o['passages']} passages)")
    out.print(f"  content hash: {d['content_hash']}")
