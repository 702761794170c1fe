"""The embedder's token counting ignores a saved tokenizer's padding and truncation settings."""

from __future__ import annotations


def _saved_tokenizer(folder, pad_to: int, truncate_at: int, words: int = 50):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i + 2 for i in range(words)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.enable_padding(length=pad_to, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=truncate_at)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))


def test_token_offsets_count_real_tokens_not_padded_or_truncated(tmp_path):
    from llmfti.models.embedders import SentenceTransformerEmbedder

    _saved_tokenizer(tmp_path / "model", pad_to=8, truncate_at=8)
    emb = SentenceTransformerEmbedder(str(tmp_path / "model"), "tiny")
    assert len(emb.token_offsets("w1 w2")) == 2  # not padded to 8
    long_text = " ".join(f"w{i % 50}" for i in range(30))
    offsets = emb.token_offsets(long_text)
    assert len(offsets) == 30  # not truncated at 8
    assert offsets[-1][1] == len(long_text)


def test_tokenizer_fingerprint_is_stable_and_tracks_the_vocabulary(tmp_path):
    """Stable across loads and padding/truncation settings (runtime state), different for another
    vocabulary: a constant fingerprint would pass the first half and fail the second."""
    from llmfti.models.embedders import SentenceTransformerEmbedder

    _saved_tokenizer(tmp_path / "model", pad_to=8, truncate_at=8)
    _saved_tokenizer(tmp_path / "same", pad_to=16, truncate_at=32)
    _saved_tokenizer(tmp_path / "other", pad_to=8, truncate_at=8, words=60)
    a = SentenceTransformerEmbedder(str(tmp_path / "model"), "tiny").tokenizer_fingerprint
    b = SentenceTransformerEmbedder(str(tmp_path / "model"), "tiny").tokenizer_fingerprint
    same = SentenceTransformerEmbedder(str(tmp_path / "same"), "tiny").tokenizer_fingerprint
    other = SentenceTransformerEmbedder(str(tmp_path / "other"), "tiny").tokenizer_fingerprint
    assert a == b == same != other
