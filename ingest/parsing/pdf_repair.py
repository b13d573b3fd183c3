"""Mending what PDF text extraction gets wrong, measured on real manuals (docs/retrieval.md, "Retrieval quality").

pypdf reads the text layer as the content stream draws it. Seen in the evaluation manuals:
- words cut apart where a producer positions glyphs one by one (gropdf: "automak e", "o verview");
- words run together where a producer draws no space characters (some pdfTeX and dvipdfmx files:
  "SupposeyourKerberosticketsallowyoutologin");
- running headers and footers repeated on every page ("Kerberos User Guide, Release 1.20.1");
- dot leaders of tables of contents ("Set operators . . . . . . . 23").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

_WORD = re.compile(r"[^\W\d_]+")
_LONG_RUN = re.compile(r"[^\W\d_]{20,}")
_DOT_LEADER = re.compile(r"(?:[ \t]?\.){4,}[ \t]*")
# Single letters that are words on their own; any other lone letter is likely a piece of a cut word.
_LONE_WORDS = frozenset("aAI")


def cut_word_share(text: str) -> float:
    """The share of words that are a lone letter (not "a" or "I"): high when a producer's glyph positioning
    made the extractor cut words apart."""
    words = _WORD.findall(text)
    if len(words) < 20:
        return 0.0
    return sum(1 for word in words if len(word) == 1 and word not in _LONE_WORDS) / len(words)


def run_together_share(text: str) -> float:
    """The share of letters in runs of 20 or more letters: no real word is that long, so they are words
    drawn without spaces between them."""
    letters = sum(len(word) for word in _WORD.findall(text))
    if letters < 200:
        return 0.0
    return sum(len(run) for run in _LONG_RUN.findall(text)) / letters


def restore_spaces(text: str, split_words: Callable[[str], list[str]] | None = None) -> str:
    """Split runs of 20+ letters into words (by English word frequencies), when a page has many of them."""
    if run_together_share(text) < 0.05:
        return text
    if split_words is None:
        import wordninja

        split_words = wordninja.split
    return _LONG_RUN.sub(lambda match: " ".join(split_words(match.group())), text)


def drop_dot_leaders(text: str) -> str:
    return _DOT_LEADER.sub(" ", text)


def _line_key(line: str) -> str:
    """A line with its numbers blanked, so "Page 3" and "Page 4" count as the same running line."""
    return re.sub(r"\d+", "#", " ".join(line.split())).casefold()


def drop_running_lines(pages: list[str], edge_lines: int = 2) -> list[str]:
    """Remove header and footer lines that repeat (numbers aside) at the top or bottom of many pages."""
    if len(pages) < 4:
        return pages
    counts: Counter[str] = Counter()
    for page in pages:
        lines = [line for line in page.split("\n") if line.strip()]
        counts.update({_line_key(line) for line in lines[:edge_lines] + lines[-edge_lines:]})
    threshold = max(3, len(pages) // 5)
    running = {key for key, count in counts.items() if count >= threshold and len(key) > 2}
    if not running:
        return pages
    cleaned = []
    for page in pages:
        lines = page.split("\n")
        content = [i for i, line in enumerate(lines) if line.strip()]
        edges = set(content[:edge_lines] + content[-edge_lines:])
        cleaned.append(
            "\n".join(line for i, line in enumerate(lines) if i not in edges or _line_key(line) not in running)
        )
    return cleaned
