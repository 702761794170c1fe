"""PromptEncoder: one encoding for training and serving, truncation, EOS and loss mask, fingerprints."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfti.errors import ConfigError
from llmfti.testing.tiny_models import tiny_tokenizer
from llmfti.transforms.model_dependent import (
    IGNORE_INDEX,
    Context,
    PromptEncoder,
    PromptTemplate,
    PromptTooLong,
    load_prompt_template,
)

WORDS = ["the", "with", "statement", "yield", "loop", "context", "answer", "[1]", "é", "数据", "{x}", "<b>", "\n", "  "]
texts = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=12).map(" ".join)
contexts = st.lists(texts, max_size=6).map(lambda ts: [Context(f"c{i}", t, score=1.0 - i / 10) for i, t in enumerate(ts)])


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def rag(tok):
    return PromptEncoder(tok, load_prompt_template("rag-default"), max_prompt_tokens=400, max_answer_tokens=64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=texts, answer=texts, ctx=contexts, budget=st.integers(150, 400))
def test_example_prompt_is_byte_identical_to_serving_prompt(tok, question, answer, ctx, budget):
    enc = PromptEncoder(tok, load_prompt_template("rag-default"), max_prompt_tokens=budget, max_answer_tokens=16)
    try:
        served = enc.encode_prompt(question, ctx)
    except PromptTooLong:
        with pytest.raises(PromptTooLong):
            enc.encode_example(question, answer, ctx)
        return
    ex = enc.encode_example(question, answer, ctx)
    assert ex.input_ids[: ex.prompt_length] == served.input_ids
    assert ex.labels[: ex.prompt_length] == [IGNORE_INDEX] * ex.prompt_length
    assert ex.labels[ex.prompt_length :] == ex.input_ids[ex.prompt_length :]
    assert ex.input_ids[-1] == tok.eos_token_id
    assert len(ex.input_ids) - ex.prompt_length <= 16
    assert len(served.input_ids) <= budget
    assert f"Question: {question}" in served.text  # the question is never cut
    assert [c.chunk_id for c in served.contexts_used] == [c.chunk_id for c in ctx[: len(served.contexts_used)]]


def test_renders_chat_template_with_generation_prompt(rag):
    p = rag.encode_prompt("What does yield do?", [Context("a", "Generators yield values."), Context("b", "Loops iterate.")])
    assert p.text.startswith("<|im_start|>system\n")
    assert "[1] Generators yield values.\n\n[2] Loops iterate." in p.text
    assert p.text.endswith("<|im_start|>assistant\n")
    assert not p.truncated and p.fingerprint == rag.fingerprint
    assert p.input_ids == list(rag.tokenizer(p.text, add_special_tokens=False)["input_ids"])


def test_truncation_drops_lowest_ranked_contexts_first(tok):
    ctx = [Context(f"c{i}", f"context {i} " + "word " * 30) for i in range(5)]
    full = PromptEncoder(tok, "rag-default", max_prompt_tokens=4000).encode_prompt("What is it?", ctx)
    one = PromptEncoder(tok, "rag-default", max_prompt_tokens=4000).encode_prompt("What is it?", ctx[:2])
    enc = PromptEncoder(tok, "rag-default", max_prompt_tokens=len(one.input_ids) + 5)
    p = enc.encode_prompt("What is it?", ctx)
    assert len(full.input_ids) > enc.max_prompt_tokens
    assert p.truncated and p.contexts_dropped == 3
    assert [c.chunk_id for c in p.contexts_used] == ["c0", "c1"]
    assert "Question: What is it?" in p.text and len(p.input_ids) <= enc.max_prompt_tokens


def test_truncation_trims_the_best_context_when_it_alone_is_too_long(tok):
    base = PromptEncoder(tok, "rag-default", max_prompt_tokens=4000).encode_prompt("Why?", [])
    enc = PromptEncoder(tok, "rag-default", max_prompt_tokens=len(base.input_ids) + 20)
    long = Context("big", "generators yield values lazily " * 40)
    p = enc.encode_prompt("Why?", [long, Context("small", "tiny")])
    assert p.truncated and [c.chunk_id for c in p.contexts_used] == ["big"]
    assert long.text.startswith(p.contexts_used[0].text) and 0 < len(p.contexts_used[0].text) < len(long.text)
    assert len(p.input_ids) <= enc.max_prompt_tokens


def test_question_is_never_cut(tok):
    enc = PromptEncoder(tok, "plain", max_prompt_tokens=30)
    with pytest.raises(PromptTooLong, match="question is never cut|max_prompt_tokens"):
        enc.encode_prompt("a very long question " * 20)


def test_eos_is_appended_even_when_the_answer_is_cut(tok):
    enc = PromptEncoder(tok, "plain", max_prompt_tokens=200, max_answer_tokens=8)
    short = enc.encode_example("q?", "Yes.")
    assert short.input_ids[-1] == tok.eos_token_id and not short.answer_truncated
    long = enc.encode_example("q?", "word " * 50)
    assert long.answer_truncated and len(long.input_ids) - long.prompt_length == 8
    assert long.labels[-1] == tok.eos_token_id


def test_pad_batch_masks_padding_by_position_even_when_pad_is_eos(tok):
    enc = PromptEncoder(tok, "plain", max_prompt_tokens=200)
    assert enc.pad_token_id != enc.eos_token_id
    same = tiny_tokenizer()
    same.pad_token = same.eos_token  # like SmolLM2: pad == eos
    enc2 = PromptEncoder(same, "plain", max_prompt_tokens=200)
    a, b = enc2.encode_example("q?", "Yes."), enc2.encode_example("longer question?", "No, it is not.")
    batch = enc2.pad_batch([a, b])
    assert len({len(r) for r in batch["input_ids"]}) == 1
    for row, labels, ex in zip(batch["input_ids"], batch["labels"], (a, b)):
        assert labels[len(ex.labels) - 1] == same.eos_token_id  # EOS still trained on
        assert all(x == IGNORE_INDEX for x in labels[len(ex.labels) :])
    left = enc2.pad_batch([enc2.encode_prompt("q?"), enc2.encode_prompt("a longer one?")], side="left")
    assert left["attention_mask"][0][0] == 0 and "labels" not in left


def test_plain_template_ignores_contexts(tok):
    enc = PromptEncoder(tok, "plain", max_prompt_tokens=200)
    p = enc.encode_prompt("Hi?", [Context("a", "ignored")])
    assert "ignored" not in p.text and p.contexts_used == []


def test_on_demand_features_are_slots(tok):
    tmpl = PromptTemplate(name="t", user="Today is {today}. {question}", features=["today"])
    enc = PromptEncoder(tok, tmpl, max_prompt_tokens=200)
    assert "Today is 2026-01-02. Hi?" in enc.encode_prompt("Hi?", features={"today": "2026-01-02"}).text
    with pytest.raises(ConfigError, match="today"):
        enc.encode_prompt("Hi?")
    with pytest.raises(ConfigError, match="unknown"):
        enc.encode_prompt("Hi?", features={"today": "x", "unknown": 1})


def test_template_validation():
    with pytest.raises(ValueError, match="question"):
        PromptTemplate(name="t", user="no slot")
    with pytest.raises(ValueError, match="unknown slots"):
        PromptTemplate(name="t", user="{question} {user_tier}")
    with pytest.raises(ValueError, match="plain names"):
        PromptTemplate(name="t", user="{question.__class__}")


def test_fingerprint_components_name_what_changed(tok):
    enc = PromptEncoder(tok, "rag-default", max_prompt_tokens=400, max_answer_tokens=64)
    assert set(enc.fingerprint_components) == {"tokenizer_files", "chat_template", "prompt_template", "budget"}

    def diff(other):
        a, b = enc.fingerprint_components, other.fingerprint_components
        return sorted(k for k in a if a[k] != b[k])

    assert diff(PromptEncoder(tiny_tokenizer(), "rag-default", 400, 64)) == []
    assert diff(PromptEncoder(tok, "plain", 400, 64)) == ["prompt_template"]
    assert diff(PromptEncoder(tok, "rag-default", 300, 64)) == ["budget"]
    assert diff(PromptEncoder(tiny_tokenizer(chat_template="{{ messages[0]['content'] }}"), "rag-default", 400, 64)) == ["chat_template"]
    other = tiny_tokenizer()
    other.add_tokens(["newword"])
    assert diff(PromptEncoder(other, "rag-default", 400, 64)) == ["tokenizer_files"]


def test_fingerprint_survives_save_and_reload(tok, tmp_path):
    enc = PromptEncoder(tok, "rag-default")
    tok.save_pretrained(tmp_path / "t")
    tok("a b", padding="max_length", truncation=True, max_length=8)  # runtime state must not matter
    reloaded = PromptEncoder.from_model_dir(tmp_path / "t", "rag-default")
    assert reloaded.fingerprint == enc.fingerprint == PromptEncoder(tok, "rag-default").fingerprint


def test_tokenizer_without_chat_template_is_refused():
    t = tiny_tokenizer()
    t.chat_template = None
    with pytest.raises(ConfigError, match="chat template"):
        PromptEncoder(t, "plain")
