"""Clean and chunk: normalisation, structure, token limits, overlap."""

from llmfti.config import ChunkerConfig
from llmfti.testing import HashEmbedder
from llmfti.transforms import get_chunker, list_chunkers, register_chunker
from llmfti.transforms.model_independent.chunk import split_sections
from llmfti.transforms.model_independent.clean import clean_text

EMB = HashEmbedder(16)


def make(chunk_tokens=20, overlap=4):
    return get_chunker("structured")(ChunkerConfig(chunk_tokens=chunk_tokens, overlap=overlap), EMB.token_offsets, EMB.tokenizer_fingerprint)


def test_clean_normalises_unicode_and_whitespace_but_keeps_structure():
    raw = "\ufeffＡＢＣ  text\u200b\r\n\r\n\r\n\r\n    indented   code\t\nend   \x07"
    assert clean_text(raw) == "ABC text\n\n    indented code\nend"


def test_sections_follow_headings_and_ignore_fenced_code():
    text = "# A\n\nintro\n\n## B\n\nbody\n\n```\n# not a heading\n```\n\n# C\n\nlast"
    sections = split_sections(text)
    assert [p for p, _ in sections] == [["A"], ["A", "B"], ["C"]]
    assert "# not a heading" in sections[1][1]


def test_chunks_respect_token_limit_and_keep_heading_path():
    para = " ".join(f"word{i}." for i in range(30))
    chunks = make().chunk(f"# Top\n\n## Inner\n\n{para}\n\nshort tail")
    assert len(chunks) > 1
    assert all(c.heading_path == ["Top", "Inner"] for c in chunks)
    assert all(len(EMB.token_offsets(c.text)) <= 20 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].embed_text.startswith("Top > Inner\n\n")


def test_overlap_repeats_trailing_sentences():
    sentences = [f"Sentence {i} ends here." for i in range(12)]
    chunks = make(chunk_tokens=20, overlap=6).chunk(" ".join(sentences))
    for a, b in zip(chunks, chunks[1:]):
        last = a.text.split(". ")[-1].rstrip(".")
        assert last in b.text  # the last sentence of a chunk opens the next one


def test_hard_cut_only_for_a_single_overlong_sentence():
    words = " ".join(f"w{i}" for i in range(100))  # no sentence boundary at all
    chunks = make(chunk_tokens=30, overlap=5).chunk(words)
    assert len(chunks) >= 4
    assert all(len(EMB.token_offsets(c.text)) <= 30 for c in chunks)
    assert chunks[0].text.split()[-5:] == chunks[1].text.split()[:5]


def test_fingerprint_changes_with_config():
    assert make(20, 4).fingerprint != make(21, 4).fingerprint
    assert make(20, 4).fingerprint == make(20, 4).fingerprint


def test_register_chunker_like_builtins():
    @register_chunker("one-chunk")
    def factory(config, offsets, tok_fp):
        class One:
            fingerprint = "one"

            def chunk(self, text):
                from llmfti.transforms.model_independent.chunk import Chunk

                return [Chunk(text)]

        return One()

    assert "one-chunk" in list_chunkers() and "structured" in list_chunkers()
    assert get_chunker("one-chunk")(None, None, None).chunk("x")[0].text == "x"
