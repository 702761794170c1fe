"""bench/finetune.py runs end to end on CPU: naive peft loop, TRL SFTTrainer and llmfti's Trainer on a tiny
shape see the same real and answer tokens in every step and end at the same finite loss (like with like)."""

from __future__ import annotations

import math

import pytest

from conftest import load_bench

pytestmark = pytest.mark.slow


def _bench():
    return load_bench("finetune")


def test_quick_tiny_run_is_like_with_like():
    pytest.importorskip("trl")
    bench = _bench()
    results = bench.run_benchmark("cpu", quick=True, shapes=["tiny"], sides=["naive", "trl", "trl_liger", "llmfti"],
                                  steps=2, warm=1, log=None)
    ran = {r["side"]: r for r in results if "useful_tok_s" in r}
    assert set(ran) == {"naive", "trl", "llmfti"}, results
    skipped = next(r for r in results if r["side"] == "trl_liger")
    assert "CUDA" in skipped["skipped"]
    ref = ran["llmfti"]
    assert len(ref["tokens_per_step"]) == 3 and min(ref["tokens_per_step"]) > 0
    for r in ran.values():
        assert r["tokens_per_step"] == ref["tokens_per_step"], r["side"]
        assert r["loss_tokens_per_step"] == ref["loss_tokens_per_step"], r["side"]
        assert math.isfinite(r["train_loss_last"]) and math.isfinite(r["eval_loss"]) and r["useful_tok_s"] > 0
        # Same init, same data per step, same optimizer, fp32 on CPU: the same training, to rounding.
        assert r["eval_loss"] == pytest.approx(ref["eval_loss"], abs=1e-3), r["side"]
        assert r["eval_loss"] < r["eval_loss_start"]
    table = bench.table(results)
    assert "| tiny | llmfti |" in table and "Triton/CUDA only" in table
