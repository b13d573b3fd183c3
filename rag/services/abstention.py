"""When to answer "not found" instead of asking the LLM: the rule, and the reason given to the person.

Two signs that the documents do not hold the answer, calibrated together on the evaluation's dev split
(docs/retrieval.md, "Retrieval quality"): the best passage's cosine similarity is low, or the question names something
that no chunk of the collection mentions (a word of it is in no chunk) and the best passage is only
moderately similar. Questions about something the documents never mention often score as high as real ones
by meaning alone; the unknown word is what gives them away.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.settings import AnsweringConfig


@dataclass(frozen=True, slots=True)
class AbstentionPolicy:
    below_score: float  # RAG_ABSTAIN_BELOW_SCORE
    unknown_words_below_score: float  # RAG_ABSTAIN_UNKNOWN_WORDS_BELOW_SCORE

    @classmethod
    def from_config(cls, answering: AnsweringConfig) -> AbstentionPolicy:
        return cls(answering.abstain_below_score, answering.abstain_unknown_words_below_score)

    def unknown_words_matter(self, best_score: float | None) -> bool:
        """Whether unknown words can change the decision: the score alone settles it outside this band, so
        the words need not be looked up there."""
        return best_score is not None and self.below_score <= best_score < self.unknown_words_below_score

    def abstains(self, best_score: float | None, has_unknown_words: bool) -> bool:
        if best_score is None or best_score < self.below_score:
            return True
        return has_unknown_words and self.unknown_words_matter(best_score)

    def reason(self, best_score: float | None, unknown_words: list[str]) -> str | None:
        """Why to abstain, in words; None to answer."""
        if not self.abstains(best_score, bool(unknown_words)):
            return None
        if best_score is None:
            return "no passage matched the question"
        if best_score < self.below_score:
            return f"the closest passage's similarity {best_score:.2f} is below {self.below_score:.2f}"
        words = ", ".join(repr(word) for word in unknown_words[:5])
        return (
            f"no document mentions {words}, and the closest passage's similarity {best_score:.2f} is below"
            f" {self.unknown_words_below_score:.2f}"
        )
