"""Resuming a fine-tune is safe: a crafted checkpoint never runs code, and a data file whose content
changed under the same path is other data (the resume key holds its content hash)."""

from __future__ import annotations

import pytest

from finetune_tiny import finetune_tiny_base, finetune_tiny_examples, finetune_write_jsonl


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return finetune_tiny_base(tmp_path_factory.mktemp("base") / "tiny-llama")


def _cfg(data, base, out, **train):
    from llmfti.config import FinetuneConfig

    t = dict(max_seq_len=64, batch_tokens=128, lr=3e-2, max_steps=4, warmup_steps=0, schedule="constant", seed=0, checkpoint_every=2)
    t.update(train)
    return FinetuneConfig(name="tiny", base_model=str(base), data_path=str(data), eval_fraction=0.2, device="cpu",
                          lora={"r": 8, "alpha": 16}, train=t, guards={"eos": "off", "adapter_changes_output": False}, output_dir=str(out))


def _crash_after_checkpoint(monkeypatch, cfg, home):
    from llmfti.pipelines.training import finetune
    from llmfti.training.trainer import Trainer

    real = Trainer.train_step

    def crash(self, step):
        if step == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(self, step)

    monkeypatch.setattr(Trainer, "train_step", crash)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, home=home, progress=False, register=False)
    monkeypatch.setattr(Trainer, "train_step", real)


class _Payload:
    """Unpickling this runs code: what a crafted trainer_state.pt would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_never_runs_code(tmp_path, home, tiny_base, monkeypatch):
    import torch

    from llmfti.errors import ConfigError
    from llmfti.pipelines.training import finetune

    data = finetune_write_jsonl(tmp_path / "data.jsonl", finetune_tiny_examples(24, seed=0))
    cfg = _cfg(data, tiny_base, tmp_path / "run")
    _crash_after_checkpoint(monkeypatch, cfg, home)
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002"
    marker = tmp_path / "pwned"
    torch.save({"key": "anything", "optimizer": _Payload(marker)}, ckpt / "trainer_state.pt")
    (ckpt / "trainer_state.json").unlink(missing_ok=True)  # as a 0.1 checkpoint: the key lived in the .pt
    with pytest.raises(ConfigError, match="not a plain tensor checkpoint|other data"):
        finetune(cfg, home=home, progress=False, register=False)
    assert not marker.exists(), "loading the checkpoint executed code"


def test_changed_data_under_the_same_path_is_not_resumed(tmp_path, home, tiny_base, monkeypatch):
    from llmfti.errors import ConfigError
    from llmfti.pipelines.training import finetune

    data = finetune_write_jsonl(tmp_path / "data.jsonl", finetune_tiny_examples(24, seed=0))
    cfg = _cfg(data, tiny_base, tmp_path / "run")
    _crash_after_checkpoint(monkeypatch, cfg, home)
    finetune_write_jsonl(data, finetune_tiny_examples(24, seed=1))  # same path, other examples
    with pytest.raises(ConfigError, match="other data or model settings"):
        finetune(cfg, home=home, progress=False, register=False)
    finetune_write_jsonl(data, finetune_tiny_examples(24, seed=0))  # the original data resumes
    resumed = finetune(cfg, home=home, progress=False, register=False)
    assert resumed["metrics"]["resumed_from"].endswith("step-000002") and resumed["metrics"]["steps"] == 4
