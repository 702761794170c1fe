"""Does the fine-tune pay? A fine-tuned model against the base model it came from, case by case, on
the suite its corpus was excluded from (python-reference) and on a corpus it never saw
(networkx-algorithms). One row per (synthesis variant, recipe): paired deltas with 95 % intervals on
ROUGE-L and semantic similarity, the answers' length, repetition and EOS behaviour, and the time of
each phase. The table that chose the demo's defaults is bench/finetune_quality.md.

    .venv/bin/python bench/finetune_quality.py --setup                      # corpora, feature groups, base evals
    .venv/bin/python bench/finetune_quality.py --variant detail --config configs/finetune/smollm2-demo.yaml
    .venv/bin/python bench/finetune_quality.py --model smollm2-python-qa:3    # evaluate a registered version only

Every row is reproducible: the records come from `llmfti records synthesize` with the variant's flags
and a seed, the dataset from `llmfti td create`, the model from `llmfti finetune --config`. The base
model's eval is run once per suite and cached under build/finetune-quality/ (delete it to re-run).
Rows are appended as JSON lines to build/finetune-quality/rows.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "finetune-quality"
BASE = "SmolLM2-135M-Instruct:1"
SUITES = {  # suite -> (feature group, corpus writer module, corpus folder)
    "python-reference": ("python-reference", "examples.python_reference_corpus", "build/corpus"),
    "networkx-algorithms": ("networkx-algorithms", "examples.networkx_algorithms_corpus", "build/networkx-corpus"),
}
# Synthesis variants: the flags of `llmfti records synthesize` and `llmfti td create` that make them.
VARIANTS = {
    "structure": {"synth": ["--method", "structure"], "td": []},
    "detail": {"synth": ["--method", "detail"], "td": []},
    "detail-nocite": {"synth": ["--method", "detail", "--no-cite"], "td": []},
    "structure-nocite": {"synth": ["--method", "structure", "--no-cite"], "td": []},
}


def cli(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "llmfti", *args, "--json"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"llmfti {' '.join(args)} exited {proc.returncode}")
    return json.loads(proc.stdout)


def setup() -> None:
    subprocess.run([sys.executable, "-m", "llmfti", "models", "pull-defaults"], check=True, cwd=ROOT)
    for suite, (fg, module, folder) in SUITES.items():
        subprocess.run([sys.executable, "-m", module, folder], check=True, cwd=ROOT)
        config = ROOT / "configs" / "features" / f"{fg}.yaml"
        extra = ["--config", str(config)] if config.is_file() else []
        subprocess.run([sys.executable, "-m", "llmfti", "ingest", folder, "--feature-group", fg, *extra], check=True, cwd=ROOT)
        base_cases(suite)


def evaluate(model: str, suite: str) -> list[dict]:
    """The suite's cases answered by `model` on the suite's feature group, with the demo's settings
    (configs/deployments/python-docs.yaml: k=4, greedy, 64 new tokens), not recorded in the registry."""
    import yaml

    from llmfti.config.deployments import DeploymentConfig
    from llmfti.evaluation.suites import load_suite
    from llmfti.home import ProjectHome
    from llmfti.pipelines.deployment import promote
    from llmfti.pipelines.evaluation import run_eval
    from llmfti.registry.deployments import DeploymentStore

    cfg = yaml.safe_load((ROOT / "configs/deployments/python-docs.yaml").read_text())
    cfg.update(name=f"bench-{suite}", model=model, feature_group=f"{SUITES[suite][0]}:1", gate_suites=[suite])
    cfg["retrieval"]["filters"] = []
    store = DeploymentStore(ProjectHome.at(os.environ.get("LLMFTI_HOME", ROOT / ".llmfti")))
    record = promote(store, DeploymentConfig.model_validate(cfg), stage=True)
    return run_eval(store.home, load_suite(suite), record, store=False, compare=False)["cases"]


def base_cases(suite: str) -> list[dict]:
    path = OUT / f"base-{suite}.json"
    if not path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(evaluate(BASE, suite)))
    return json.loads(path.read_text())


def behaviour(cases: list[dict]) -> dict:
    """What the model learned to do, read off its answers: length, repetition and citations."""
    from llmfti.evaluation.behaviour import answer_behaviour

    return answer_behaviour([c["answer"] for c in cases])


def compare(model: str, suites=tuple(SUITES)) -> dict:
    from llmfti.evaluation.compare import compare_paired

    out = {}
    for suite in suites:
        t0 = time.time()
        tuned, base = evaluate(model, suite), base_cases(suite)
        comp = compare_paired(base, tuned, ["rouge_score", "semantic_similarity"], tolerance=0.0)
        out[suite] = {m: {k: r[k] for k in ("mean_diff", "lower", "upper")} for m, r in comp["metrics"].items()}
        out[suite]["base"] = behaviour(base)
        out[suite]["tuned"] = behaviour(tuned)
        out[suite]["eval_s"] = round(time.time() - t0, 1)
        (OUT / f"{model.replace(':', '-')}-{suite}.json").write_text(json.dumps(tuned))
    return out


def train(variant: str, config: str, max_records: int, seed: int, sets: list[str]) -> tuple[str, dict]:
    v = VARIANTS[variant]
    t0 = time.time()
    records = f"bench-{variant}"
    synth = cli("records", "synthesize", "python-reference", "--into", records, "--replace", "--exclude-suite", "python-reference",
                "--max-records", str(max_records), "--seed", str(seed), *v["synth"])
    ds = cli("td", "create", f"bench-{variant}", "--from", records, "--contexts", "python-reference", "--top-k", "4", "--model", BASE,
             "--exclude-contexts-of", "python-reference", "--eval-suite", "python-reference", "--refuse-eval-overlap", "--seed", str(seed), *v["td"])
    t1 = time.time()
    ft = cli("finetune", "--config", config, "--set", f"dataset={ds['ref']}", "--no-resume", *[a for s in sets for a in ("--set", s)])
    t2 = time.time()
    reg = ft["registration"]
    if not reg.get("registered"):
        raise SystemExit(f"not registered: {reg}")
    return reg["ref"], {"records": synth.get("documents", {}).get("added"), "dataset": ds["ref"], "examples": ds.get("rows"),
                        "data_s": round(t1 - t0, 1), "finetune_s": round(t2 - t1, 1),
                        "eval_loss": ft["metrics"].get("eval_loss"), "eval_loss_start": ft["metrics"].get("eval_loss_start")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--setup", action="store_true", help="write both corpora, ingest them, evaluate the base model")
    p.add_argument("--variant", choices=sorted(VARIANTS), help="synthesis variant to train on")
    p.add_argument("--config", default="configs/finetune/smollm2-demo.yaml", help="fine-tune recipe")
    p.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE (as llmfti finetune --set)")
    p.add_argument("--max-records", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="evaluate this registered model version only (no training)")
    p.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES), help="suites to compare on (default: both)")
    a = p.parse_args()
    os.environ.setdefault("LLMFTI_HOME", str(ROOT / ".llmfti"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.setup:
        setup()
        return
    row: dict = {"variant": a.variant, "config": a.config, "sets": a.set, "max_records": a.max_records, "seed": a.seed}
    if a.model:
        model = a.model
    else:
        model, info = train(a.variant, a.config, a.max_records, a.seed, a.set)
        row.update(info)
    row["model"] = model
    row["suites"] = compare(model, a.suites)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
