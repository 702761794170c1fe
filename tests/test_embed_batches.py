"""embed() cuts its batches by the tokens the model sees, not by characters: a batch pads to its
longest text in tokens, so batches of similar token counts waste less compute on padding."""

from __future__ import annotations

import numpy as np

from llmfti.models.defaults import packaged_embedder_dir
from llmfti.models.embedders import SentenceTransformerEmbedder

# Characters and tokens disagree: digits and symbols split into many tokens, plain words into one each.
TEXTS = [
    "3.14159 2.71828 1.41421 1.73205",  # short in characters, many tokens
    "understanding organisations internationally",  # longer in characters, few tokens
    "a b c d e f g h i j k l m n o p",
    "Characteristically unremarkable",
    "x",
    "(a+b)*(c-d)/[e^f]",
]


def _embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(packaged_embedder_dir()), "all-MiniLM-L6-v2", dtype="float32", device="cpu")


def test_batch_lengths_count_model_tokens_cut_at_max_seq_length():
    emb = _embedder()
    lengths = emb.batch_lengths(TEXTS + ["word " * 1000])
    tok = emb._hf_tokenizer()
    assert lengths[:-1] == [len(tok.encode(t).ids) for t in TEXTS]
    assert lengths[0] > lengths[1] and len(TEXTS[0]) < len(TEXTS[1])  # the case characters get wrong
    assert lengths[-1] == 256  # all-MiniLM-L6-v2's max_seq_length


def test_embed_cuts_batches_by_token_count():
    emb = _embedder()
    seen: list[list[str]] = []
    real = emb._encode

    def spy(batch):
        seen.append(batch)
        return real(batch)

    emb._encode = spy
    vecs = emb.embed(TEXTS, batch_size=2)
    lengths = dict(zip(TEXTS, emb.batch_lengths(TEXTS)))
    by_tokens = sorted(TEXTS, key=lambda t: -lengths[t])
    assert [t for batch in seen for t in batch] == by_tokens
    # Fewer padded tokens than batches cut by characters (what the order was before).
    padded = sum(max(lengths[t] for t in b) * len(b) for b in seen)
    by_chars = sorted(TEXTS, key=lambda t: -len(t))
    padded_chars = sum(max(lengths[t] for t in by_chars[i:i + 2]) * 2 for i in range(0, len(by_chars), 2))
    assert padded < padded_chars
    # Vectors stay in input order whatever the batches.
    for i, text in enumerate(TEXTS):
        assert np.allclose(vecs[i], emb.embed([text])[0], atol=1e-5)


def test_ties_in_tokens_go_longest_in_characters_first_then_in_input_order():
    emb = _embedder()
    words = ["cat", "dog", "elephant", "giraffe", "hippopotamus", "ox", "rhinoceros", "zebra"]
    lengths = dict(zip(words, emb.batch_lengths(words)))
    same = [w for w in words if lengths[w] == lengths["cat"]]
    assert len({len(w) for w in same}) > 1  # a tie in tokens that characters break
    texts = same[::-1] + [same[0]]  # shortest-in-characters last, and one duplicate
    order = emb.batch_order(texts)
    chars = [len(texts[i]) for i in order]
    assert chars == sorted(chars, reverse=True)
    dup = [i for i in order if texts[i] == same[0]]
    assert dup == sorted(dup)  # equal texts keep their input order
