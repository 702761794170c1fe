"""Encoded-example reading (list, JSONL, parquet; NAME:VERSION through the training pipeline) and the three loss paths."""

from __future__ import annotations

import pytest

from finetune_tiny import finetune_tiny_examples, finetune_write_jsonl


def test_load_encoded_examples_sources(tmp_path, home):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmfti.errors import ConfigError, NotFoundError
    from llmfti.training.data import DatasetInfo, load_encoded_examples

    rows = finetune_tiny_examples(10)
    train, evals, info = load_encoded_examples(rows, eval_fraction=0.2, seed=1)
    assert (len(train), len(evals), info.ref) == (8, 2, "memory")

    split = [dict(r, split="eval" if i < 3 else "train") for i, r in enumerate(rows)]
    train, evals, info = load_encoded_examples(finetune_write_jsonl(tmp_path / "d.jsonl", split))
    assert (len(train), len(evals)) == (7, 3) and info.ref.startswith("file:")

    pq.write_table(pa.Table.from_pylist(split), tmp_path / "d.parquet")
    train, evals, _ = load_encoded_examples(str(tmp_path / "d.parquet"))
    assert (len(train), len(evals)) == (7, 3)

    from llmfti.pipelines.training.dataset import read_training_dataset

    with pytest.raises(NotFoundError, match="training dataset 'qa:1' does not exist"):
        read_training_dataset("qa:1", home)  # the training pipeline reads NAME:VERSION from the store
    with pytest.raises(NotFoundError, match="not a file"):
        load_encoded_examples("qa:1")  # the engine itself never reads the store
    _, evals, info = load_encoded_examples(split, info=DatasetInfo(ref="qa:1", encoder={"fingerprint": "abc"}))
    assert info.ref == "qa:1" and info.encoder["fingerprint"] == "abc" and len(evals) == 3

    with pytest.raises(ConfigError, match="no loss-bearing"):
        load_encoded_examples([{"input_ids": [1, 2, 3], "labels": [-100, -100, -100]}])
    with pytest.raises(ConfigError, match="differ in length"):
        load_encoded_examples([{"input_ids": [1, 2, 3], "labels": [-100, 2]}])


def test_loss_paths_agree_values_and_gradients():
    import torch

    from llmfti.training.loss import causal_lm_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False).double()

    class Wrapped(torch.nn.Module):  # stands in for a LoRA-wrapped lm_head: takes the chunked-module path
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    t = torch.randint(0, 50, (2, 9))
    t[0, :3] = -100
    h0 = torch.randn(2, 9, 16, dtype=torch.float64)
    results = []
    for mod, fused in [(head, True), (Wrapped(head), True), (head, False)]:
        h = h0.clone().requires_grad_(True)
        head.weight.grad = None
        loss, n = causal_lm_loss(h, mod, t, chunk=4, fused=fused)
        (loss * 0.5).backward()
        results.append((float(loss), n, h.grad.clone(), head.weight.grad.clone()))
    ref = results[-1]
    for loss, n, gh, gw in results[:-1]:
        assert n == ref[1] == 15
        assert loss == pytest.approx(ref[0], rel=1e-12)
        torch.testing.assert_close(gh, ref[2])
        torch.testing.assert_close(gw, ref[3])
