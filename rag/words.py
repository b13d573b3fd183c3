"""The word rules, in one place: how the keyword indexes split and select a query's words (both engines),
which words follow-ups count as new, and which words the evidence stems.

Two splitters, on purpose. INDEX_WORD is a run of word characters (underscores included), as the keyword
indexes tokenize. PROSE_WORD splits at underscores and keeps an apostrophe inside a word ("don't"): the evidence
compares sentences of prose with each other, not with the index. Both drop the same STOPWORDS.
"""

from __future__ import annotations

import hashlib
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


# Code identifiers, whole: shell parameters ($?, $#, ${name}, $HOME), options (--dry-run, -n), qualified names
# (os.path.join, std::vector, ptr->field) and names joined by underscores (sqlite3_open_v2, LD_LIBRARY_PATH).
# Both keyword engines split them into parts (or drop them: "$?" has no word in it), so a page that defines
# one ranks no higher than every page using its common parts.
IDENTIFIER = re.compile(
    r"""\$(?:[?#@*!$0-9-]|\{[^}\s]{1,40}\}|[A-Za-z_]\w*)
      | (?<![\w-])--?[A-Za-z](?:[\w-]*\w)?
      | (?<![\w.])[A-Za-z_]\w*(?:(?:\.|::|->)[A-Za-z_]\w*)+
      | (?<![\w$])\w*_\w*[^\W_]\w*""",
    re.VERBOSE,
)
# An identifier's one keyword token: a prefix and digits, which both engines keep whole and no stemmer changes
# (a stemmer only cuts letter suffixes).
IDENTIFIER_TOKEN_PREFIX = "ident"


def identifiers(text: str) -> list[str]:
    """The code identifiers in ``text``, case-folded, once each, in order ("$?", "--dry-run", "os.path.join")."""
    return list(dict.fromkeys(match.group().casefold() for match in IDENTIFIER.finditer(text)))


def identifier_token(identifier: str) -> str:
    """The word both keyword engines index for an identifier: a digest, since neither tokenizer keeps "$?"
    or "os.path.join" in one piece (its parts are indexed as well, as words of the text)."""
    digest = hashlib.blake2b(identifier.encode(), digest_size=6).digest()
    return f"{IDENTIFIER_TOKEN_PREFIX}{int.from_bytes(digest, 'big'):015d}"


def keyword_text(text: str) -> str:
    """What a keyword engine indexes for ``text``: the text, then one token per identifier in it."""
    tokens = [identifier_token(word) for word in identifiers(text)]
    return f"{text}\n{' '.join(tokens)}" if tokens else text


def search_words(query: str) -> list[str]:
    """What a keyword search looks for: the query's words, and one token per identifier in it."""
    return query_words(query) + [identifier_token(word) for word in identifiers(query)]


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
