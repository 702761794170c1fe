"""FinetuneConfig validation, the shipped YAMLs, the `llmfti finetune` command and a 2-process DDP run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_tiny import finetune_tiny_base, finetune_tiny_examples, finetune_write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_finetune_yamls_validate():
    from llmfti.config import CONFIG_MODELS, FinetuneConfig, load_config

    assert CONFIG_MODELS["finetune"] is FinetuneConfig
    files = sorted((ROOT / "configs" / "finetune").glob("*.yaml"))
    assert files
    for f in files:
        cfg = load_config(FinetuneConfig, f)
        assert ":" in cfg.dataset
    demo = load_config(FinetuneConfig, ROOT / "configs/finetune/smollm2-demo.yaml", ["train.max_steps=20", "lora.r=4"])
    assert demo.base_model == "SmolLM2-135M-Instruct" and demo.train.max_steps == 20 and demo.lora.r == 4


@pytest.mark.parametrize(
    "bad, match",
    [
        ({}, "exactly one of"),
        ({"dataset": "qa:1", "data_path": "x.jsonl"}, "exactly one of"),
        ({"dataset": "qa"}, "NAME:VERSION"),
        ({"dataset": "qa:1", "train": {"max_seq_len": 4096, "batch_tokens": 1024}}, "batch_tokens"),
        ({"dataset": "qa:1", "train": {"max_steps": 5, "warmup_steps": 5}}, "warmup_steps"),
        ({"dataset": "qa:1", "lora": {"rank": 8}}, "Extra inputs"),
    ],
)
def test_config_cross_field_checks(bad, match):
    from llmfti.config import FinetuneConfig, load_config
    from llmfti.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config(FinetuneConfig, None, [f"{k}={json.dumps(v)}" for k, v in {"name": "m", "base_model": "b", **bad}.items()])


def test_import_and_help_do_not_import_torch():
    code = "import sys, llmfti, llmfti.cli, llmfti.training, llmfti.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _write_yaml(tmp_path, base, data, **train):
    import yaml

    t = {"max_seq_len": 64, "batch_tokens": 128, "lr": 3e-2, "max_steps": 3, "schedule": "constant", **train}
    cfg = {"name": "cli-tiny", "base_model": str(base), "data_path": str(data), "device": "cpu",
           "lora": {"r": 4, "alpha": 8}, "train": t, "guards": {"eos": "off"}}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_cli_finetune_json_and_merge(tmp_path, home):
    from typer.testing import CliRunner

    from llmfti.cli import app

    base = finetune_tiny_base(tmp_path / "base")
    data = finetune_write_jsonl(tmp_path / "d.jsonl", finetune_tiny_examples(16))
    res = CliRunner().invoke(app, ["--home", str(home), "finetune", "-c", str(_write_yaml(tmp_path, base, data)),
                                   "--set", "train.max_steps=2", "--merge", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["metrics"]["steps"] == 2 and doc["merged_dir"]
    assert (Path(doc["merged_dir"]) / "config.json").is_file()
    assert (Path(doc["adapter_dir"]) / "llmfti_training.json").is_file()
    # A bare JSONL records no prompt encoder: training finishes, registration is refused with the reason.
    assert doc["registration"]["registered"] is False and "no prompt encoder" in doc["registration"]["reason"]


@pytest.mark.integration
@pytest.mark.slow
def test_torchrun_two_processes_cpu(tmp_path):
    """The same command under torchrun (gloo on CPU): one result, steps split across ranks."""
    from server_process import free_port  # a fixed port collides with other runs on the machine

    base = finetune_tiny_base(tmp_path / "base")
    data = finetune_write_jsonl(tmp_path / "d.jsonl", finetune_tiny_examples(16))
    yml = _write_yaml(tmp_path, base, data, max_steps=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "llmfti", "--home", str(tmp_path / "home"), "finetune", "-c", str(yml), "--json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert doc["metrics"]["world_size"] == 2 and doc["metrics"]["steps"] == 2
