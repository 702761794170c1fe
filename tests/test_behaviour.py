"""What a model learned to do, read off its answers (llmfti.evaluation.behaviour)."""

from llmfti.evaluation.behaviour import answer_behaviour, cited, is_refusal, repeats


def test_repetition_citations_and_refusals_are_recognised():
    looping = "The answer to the question is: yes. The answer to the question is: yes. The answer to the question is: yes."
    assert repeats(looping) and not repeats("It wraps a block with a context manager [1].")
    assert repeats("a b c d e f g h then again a b c d e f g h")  # an 8-word run said twice
    assert cited("As [1] and [3] say.") == [1, 3] and cited("No citation.") == []
    assert is_refusal("The contexts do not say.") and not is_refusal("It returns None.")
    b = answer_behaviour([looping, "It returns None [2].", ""])
    assert b == {"answers": 3, "mean_words": round((len(looping.split()) + 4) / 3, 1), "repetition_rate": 0.333,
                 "cited_share": 0.333, "refusal_share": 0.0}
    assert answer_behaviour([])["mean_words"] is None
