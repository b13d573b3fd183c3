"""The word rules, in one place: how the keyword indexes split and select a query's words (both engines),
which words follow-ups count as new, and which words the evidence stems.

Two splitters, on purpose. INDEX_WORD is a run of word characters (underscores included), as the keyword
indexes tokenize. PROSE_WORD splits at underscores and keeps an apostrophe inside a word ("don't"): the evidence
compares sentences of prose with each other, not with the index. Both drop the same STOPWORDS.
"""

from __future__ import annotations

import re

# Words too common to help ranking; dropping them keeps the OR query short.
_STOPWORD_TEXT = """a an and are as at be by can do does for from how i if in is it its me my of on or so that the
their them then there these this to was what when where which who why will with would you your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
INDEX_WORD = re.compile(r"\w+", re.UNICODE)
PROSE_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")

# A term in more than this share of a collection's chunks (and in more than MIN_COMMON chunks) hardly
# ranks anything (its IDF is near zero) but makes FTS5 score most of the collection: it is left out.
COMMON_SHARE = 0.05
MIN_COMMON = 1000
MAX_TERMS = 16


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w for w in INDEX_WORD.findall(query.lower()) if w not in STOPWORDS))


def selective_words(words: list[str], frequency: dict[str, int], total: int) -> list[str]:
    """The query's words minus those too common in a collection of ``total`` chunks to rank anything (rarest
    first); ``frequency``: how many chunks hold each word."""
    common = max(MIN_COMMON, COMMON_SHARE * total)
    present = sorted((w for w in words if frequency[w]), key=lambda w: frequency[w])
    selective = [w for w in present if frequency[w] <= common]
    # If every word is common, the two rarest still rank something.
    return (selective or present[:2])[:MAX_TERMS]
