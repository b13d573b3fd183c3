"""The abstention rule: the score decides alone outside the band where unknown words count."""

from __future__ import annotations

from rag.services.abstention import AbstentionPolicy

POLICY = AbstentionPolicy(below_score=0.3, unknown_words_below_score=0.5)


def test_unknown_words_matter_only_between_the_two_thresholds():
    assert [POLICY.unknown_words_matter(s) for s in (None, 0.29, 0.3, 0.49, 0.5, 0.9)] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]


def test_the_reason_agrees_with_the_decision():
    for score in (None, 0.1, 0.3, 0.4, 0.5, 0.8):
        for unknown in ([], ["zeppelin"]):
            assert (POLICY.reason(score, unknown) is not None) == POLICY.abstains(score, bool(unknown))
    assert POLICY.abstains(0.4, True) and not POLICY.abstains(0.4, False)
    assert "'zeppelin'" in POLICY.reason(0.4, ["zeppelin"])
    assert "below 0.30" in POLICY.reason(0.1, ["zeppelin"])
    assert POLICY.reason(None, []) == "no passage matched the question"
