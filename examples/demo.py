"""The demo (`make demo`): the whole feature -> training -> inference triangle on the embedded
defaults, as the CLI commands a user would type.

    python -m examples.demo

1. feature pipeline: ingest the Python language reference into a versioned feature group;
2. the base model (SmolLM2-135M-Instruct) serves it once the eval gate passes (stage, eval, promote);
3. instruction records synthesized from the feature store (never from the documents the eval suite
   cites), a point-in-time training dataset encoded with the serving prompt encoder;
4. a short LoRA fine-tune on CPU, registered with its lineage;
5. the fine-tuned model staged as a challenger of the same deployment, evaluated on the same suite
   and compared case by case with the base model that serves;
6. promoted only if the gate says so; the before/after table says which tuple serves and why;
7. questions asked to whatever serves.

Each step is idempotent: a second run reuses the feature group, the dataset, the fine-tuned model and
the evals of unchanged tuples. The fine-tune is sized for 2 CPU cores (see configs/finetune/smollm2-demo.yaml);
whatever it does to the gate metrics is printed as measured.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from examples.common import CONFIG, DEPLOYMENT, FG, REPORT, SUITE, llmfti, llmfti_json, prepare, stage_and_gate

BASE_MODEL = "SmolLM2-135M-Instruct:1"
RECORDS = "python-qa"
DATASET = "python-qa"
FINETUNE = "configs/finetune/smollm2-demo.yaml"
CHALLENGER = "build/deployments/python-docs-challenger.yaml"
CHALLENGER_REPORT = "build/eval-report-challenger.html"
MAX_RECORDS = 48  # one CPU epoch over these (~43 train examples of ~850 tokens) takes ~3.5 minutes on 2 cores
QUESTIONS = [
    "What does the with statement do?",
    "What happens when break leaves a try statement with a finally clause?",
    "What does a bare raise statement do?",
]


def main() -> None:
    timings: dict[str, float] = {}

    def phase(name: str, t0: float) -> None:
        timings[name] = round(time.time() - t0, 1)

    t = time.time()
    prepare()
    llmfti("fg", "show", FG)
    llmfti("fg", "search", FG, "What does the with statement do with __exit__?", "-k", "3")
    phase("feature pipeline", t)

    t = time.time()
    print("\n# 1. The base model serves the feature group once the eval gate passes.", flush=True)
    if llmfti("deploy", CONFIG, check=False) != 0:
        print("\n# refused: no passing eval for this tuple yet. Stage it, gate it, then promote it.", flush=True)
        stage_and_gate()
        llmfti("deploy", CONFIG)
    phase("base model: gate and deploy", t)

    t = time.time()
    print("\n# 2. Training data from the feature store: records synthesized from the documents (none that the eval"
          "\n#    suite cites), then a point-in-time dataset encoded with the serving prompt encoder.", flush=True)
    # detail questions (one sentence of a chunk answers each), answered without a trailing citation:
    # the variant that made the fine-tune pay (bench/finetune_quality.md). --replace: the group holds this run's records.
    synth = llmfti_json("records", "synthesize", FG, "--into", RECORDS, "--method", "detail", "--no-cite", "--replace",
                        "--exclude-suite", SUITE, "--max-records", str(MAX_RECORDS), "--seed", "0")
    dataset = _dataset_for(synth)
    phase("records and training dataset", t)

    t = time.time()
    print("\n# 3. A short LoRA fine-tune on CPU, registered with its lineage.", flush=True)
    model = _finetuned_model(dataset)
    llmfti("models", "show", model)
    phase("fine-tune", t)

    t = time.time()
    print(f"\n# 4. {model} as a challenger of {DEPLOYMENT}: the same suite, compared case by case with what serves.", flush=True)
    _write_challenger(model)
    llmfti("deploy", CHALLENGER, "--stage")
    challenger = llmfti_json("eval", SUITE, "--deployment", DEPLOYMENT, "--staged", "--report", CHALLENGER_REPORT, check=False)
    promoted = llmfti("deploy", CHALLENGER, check=False) == 0
    phase("challenger: eval and promotion", t)

    _before_after(challenger, model, promoted)
    t = time.time()
    for question in QUESTIONS:
        llmfti("ask", DEPLOYMENT, question)
    phase("questions", t)
    print("\n# Seconds per phase: " + ", ".join(f"{k} {v}" for k, v in timings.items()), flush=True)
    print(f"""
# Serve every active deployment over HTTP (OpenAPI at http://127.0.0.1:8000/docs):
    llmfti serve --port 8000
# then, from another shell:
    curl -s http://127.0.0.1:8000/v1/deployments/{DEPLOYMENT}/invoke -H 'content-type: application/json' \\
         -d '{{"question": "What does the with statement do?"}}'
# Eval reports: {REPORT} (base model), {CHALLENGER_REPORT} (fine-tuned challenger)""", flush=True)


def _dataset_for(synth: dict) -> str:
    """The newest training dataset built from the records commit just written, else a new one."""
    records_commit = synth["commit"]
    listing = llmfti_json("td", "list")["training_datasets"]
    for ds in reversed(listing):
        if ds["ref"].startswith(f"{DATASET}:") and ds["records"]["commit"] == records_commit:
            print(f"\n# reusing {ds['ref']}: built from {RECORDS} @ commit {records_commit}", flush=True)
            return ds["ref"]
    created = llmfti_json("td", "create", DATASET, "--from", RECORDS, "--contexts", FG, "--top-k", "4", "--model", BASE_MODEL,
                          "--exclude-contexts-of", SUITE, "--eval-suite", SUITE, "--refuse-eval-overlap", "--seed", "0")
    llmfti("td", "show", created["ref"])
    return created["ref"]


def _finetuned_model(dataset: str) -> str:
    """The registered model version trained on `dataset`, training it first if there is none."""
    name = yaml.safe_load(Path(FINETUNE).read_text())["name"]
    versions = [m for m in llmfti_json("models", "list")["model_versions"] if m["ref"].startswith(f"{name}:") and m["training_dataset"] == dataset]
    if versions:
        print(f"\n# reusing {versions[-1]['ref']}: already trained on {dataset}", flush=True)
        return versions[-1]["ref"]
    result = llmfti_json("finetune", "--config", FINETUNE, "--set", f"dataset={dataset}", "--no-resume")
    reg = result["registration"]
    if not reg.get("registered"):
        raise SystemExit(f"the fine-tuned model was not registered: {reg.get('reason')}")
    return reg["ref"]


def _write_challenger(model: str) -> None:
    cfg = yaml.safe_load(Path(CONFIG).read_text())
    cfg["model"] = model
    cfg["description"] = f"{cfg.get('description', '')} Challenger: {model}."
    Path(CHALLENGER).parent.mkdir(parents=True, exist_ok=True)
    Path(CHALLENGER).write_text(yaml.safe_dump(cfg, sort_keys=False))


def _base_metrics() -> dict:
    evals = [e for e in llmfti_json("models", "show", BASE_MODEL).get("evals", []) if e.get("suite") == SUITE and e.get("passed")]
    return evals[-1]["metrics"] if evals else {}


def _before_after(challenger: dict, model: str, promoted: bool) -> None:
    comp = challenger.get("comparison") or {}
    base = comp.get("champion_metrics") or _base_metrics()
    tuned = challenger.get("metrics", {})
    print(f"\n# Gate metrics on {SUITE} (48 questions): base {BASE_MODEL} vs fine-tuned {model}", flush=True)
    print(f"  {'metric':<44}{'base':>8}{'tuned':>8}{'diff':>8}  {'paired 95% interval':<22}")
    for metric in sorted(set(base) | set(tuned)):
        b, f = base.get(metric), tuned.get(metric)
        row = comp.get("metrics", {}).get(metric, {})
        interval = f"[{row['lower']:+.3f}, {row['upper']:+.3f}]" if row.get("lower") is not None else ""
        diff = f"{f - b:+8.3f}" if b is not None and f is not None else f"{'':>8}"
        print(f"  {metric:<44}{_num(b):>8}{_num(f):>8}{diff}  {interval}")
    tb, cb = _champion_behaviour(comp), challenger.get("behaviour") or {}
    for key, label in (("mean_words", "words per answer"), ("repetition_rate", "answers that repeat themselves")):
        if key in cb:
            print(f"  {label:<44}{_num(tb.get(key)):>8}{_num(cb.get(key)):>8}")
    verdict = "PASSED" if challenger.get("passed") else "FAILED (" + ", ".join(challenger.get("failing", [])) + ")"
    print(f"  challenger gate: {verdict}; compared with version {comp.get('champion', {}).get('deployment_version', '-')}: "
          f"{'not significantly worse' if comp.get('passed') else 'significantly worse on ' + ', '.join(comp.get('worse_on', [])) if comp else 'no comparison (it already serves)'}")
    active = llmfti_json("deployments", "show", DEPLOYMENT)
    why = ("the challenger passed its gate and was not significantly worse than the base model" if promoted
           else "the challenger did not qualify, so the base model keeps serving")
    commit = active["checks"].get("resolved_commit") or active["commit"]
    print(f"\n# {DEPLOYMENT} serves version {active['version']}: model {active['model']}, {active['feature_group']} @ commit "
          f"{commit} - {why}.", flush=True)


def _champion_behaviour(comp: dict) -> dict:
    """The serving model's answer behaviour on the same suite: from the eval the comparison read."""
    from llmfti.evaluation.behaviour import answer_behaviour

    for ev in llmfti_json("models", "show", BASE_MODEL).get("evals", [])[::-1]:
        if ev.get("suite") == SUITE and ev.get("tuple_key") == (comp.get("champion") or {}).get("tuple_key") and ev.get("artifact"):
            import json
            import os

            path = Path(os.environ.get("LLMFTI_HOME", ".llmfti")) / ev["artifact"]
            if path.is_file():
                return answer_behaviour([c["answer"] for c in json.loads(path.read_text())["cases"]])
    return {}


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
