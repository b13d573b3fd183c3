"""Evidence a person can check an answer against: the quoted sentences behind each citation, which citations
the answer carries, and which of its sentences the sources support.

Everything here compares sentences: those of each cited chunk with the question (the quote), and those of the
answer with the chunks' (grounding, and a share of the citations' order). Two measures of "says the same thing"
are available: shared word stems (lexical) and the embedding model's cosine. `RAG_QUOTE_METHOD` and
`RAG_GROUNDING_METHOD` pick one or both for each job; both were chosen on the PDF eval's dev split by
`bench/quotes.py` (docs/api.md, "Evidence"). Matching the question, a word counts by how rare it is in the
collection (BM25's inverse document frequency, from the keyword index): "Windows" in a question about argtable
says more than "argument".
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from cachetools import LRUCache

from rag.ports import WordFrequencies
from rag.words import PROSE_WORD, STOPWORDS

QuoteMethod = Literal["lexical", "embedding", "both"]
Embed = Callable[[Sequence[str]], np.ndarray]

# A marker like [2] or [1, 3] or [1][2] in the answer.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# Citations are ordered by QUESTION_WEIGHT times how well each one's quote matches the question, plus
# ANSWER_WEIGHT times how well the source supports the answer, plus its retrieval score. Chosen together on the
# PDF eval's dev split (bench/quotes.py) for answers both right (the eval's own) and wrong (the embedded 135M
# model's): a larger answer weight let a wrong answer lead the order astray, at 0 a right one could not help it.
QUESTION_WEIGHT = 2.0
ANSWER_WEIGHT = 0.25
# A sentence shorter than this (a heading, "See below.") says too little to be a quote on its own: its
# neighbour joins it.
_SHORT_SENTENCE = 40


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Quote:
    text: str  # a verbatim substring of the chunk's text
    start: int  # character offsets in the chunk's text
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class GroundedSentence:
    text: str
    start: int  # character offsets in the answer
    end: int
    citations: list[int]  # the sources that support it (their numbers), best first
    support: float  # the best source's agreement with it, 0-1
    supported: bool


@dataclass(frozen=True, slots=True)
class SourceEvidence:
    quote: Quote | None
    support: float  # how well the source supports the answer (the question, when there is no answer)
    cited: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    sources: dict[int, SourceEvidence]  # by source number
    order: list[int]  # source numbers, best first (see EvidenceFinder.find)
    grounding: list[GroundedSentence]


# The segmenter and the stemmer keep per-call state on the instance, so threads answering questions side by
# side must not share one: each thread gets its own.
@dataclass(frozen=True, slots=True)
class Window:
    """A candidate quote in source ``n``: the sentences it is judged by (``core``, first and last) and the ones it
    quotes with their neighbours (``around``); ``quote`` is their text, scored once chosen."""

    n: int
    core: tuple[int, int]
    around: tuple[int, int]
    quote: Quote


_per_thread = threading.local()


def _segmenter():
    if not hasattr(_per_thread, "segmenter"):
        import pysbd

        _per_thread.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return _per_thread.segmenter


def _stemmer():
    if not hasattr(_per_thread, "stemmer"):
        import snowballstemmer

        _per_thread.stemmer = snowballstemmer.stemmer("english")
    return _per_thread.stemmer


def sentences(text: str) -> list[Span]:
    """The text's sentences with their offsets, white space trimmed. A single line break is read as a space
    (PDF text breaks lines mid-sentence); a blank line always ends a sentence."""
    if not text.strip():
        return []
    # Same length as the text, so the segmenter's offsets are the text's offsets.
    flowing = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    spans: list[Span] = []
    for piece in _segmenter().segment(flowing):
        for part_start, part in _paragraphs(text[piece.start : piece.end]):
            start = piece.start + part_start
            stripped = part.strip()
            if stripped:
                start += len(part) - len(part.lstrip())
                spans.append(Span(start, start + len(stripped), stripped))
    return spans


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """Split at blank lines, which the segmenter sometimes reads through."""
    pieces, cursor = [], 0
    for match in re.finditer(r"\n\s*\n", text):
        pieces.append((cursor, text[cursor : match.start()]))
        cursor = match.end()
    pieces.append((cursor, text[cursor:]))
    return pieces


def stems(text: str) -> set[str]:
    words = [word for word in PROSE_WORD.findall(text.lower()) if word not in STOPWORDS]
    return set(_stemmer().stemWords(words))


def cited_numbers(answer: str) -> list[int]:
    """The source numbers the answer's markers name, in order of first appearance."""
    numbers: dict[int, None] = {}
    for match in _MARKER.finditer(answer):
        for number in re.split(r"\s*[,;]\s*", match.group(1)):
            numbers[int(number)] = None
    return list(numbers)


def claims_of(answer: str) -> tuple[list[Span], list[list[int]]]:
    """The answer's sentences that say something, and the source numbers each one's markers name. A marker
    at the start of a sentence ("... built in. [2] Next") belongs to the sentence before it."""
    spans = sentences(answer)
    markers: list[list[int]] = [[] for _ in spans]
    for match in _MARKER.finditer(answer):
        index = max((i for i, span in enumerate(spans) if span.start <= match.start()), default=0)
        if index > 0 and not answer[spans[index].start : match.start()].strip():
            index -= 1
        if spans:
            markers[index] += cited_numbers(match.group(0))
    kept = [i for i, span in enumerate(spans) if stems(strip_markers(span.text))]
    return [spans[i] for i in kept], [list(dict.fromkeys(markers[i])) for i in kept]


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def lexical_agreement(claim: set[str], sentence: set[str], weights: dict[str, float] | None = None) -> float:
    """The share of the claim's word stems that the sentence holds, each stem counted by its weight (1 when
    ``weights`` is None; a stem it lacks weighs as a word no chunk holds)."""
    if weights is None:
        return len(claim & sentence) / len(claim) if claim else 0.0
    unseen = max(weights.values(), default=1.0)
    total = sum(weights.get(stem, unseen) for stem in claim)
    return sum(weights.get(stem, unseen) for stem in claim & sentence) / total if total else 0.0


def rarity_weights(frequencies: WordFrequencies | None) -> dict[str, float] | None:
    """Each counted word's stem weighed by how rare the word is in the collection, as BM25 weighs it (None: no
    counts, every stem weighs the same)."""
    if frequencies is None or frequencies.chunks <= 0 or not frequencies.counts:
        return None
    weights: dict[str, float] = {}
    for word, count in frequencies.counts.items():
        stem = _stemmer().stemWord(word)
        weights[stem] = max(weights.get(stem, 0.0), math.log(1 + frequencies.chunks / (1 + count)))
    return weights


def quote_windows(spans: list[Span]) -> list[tuple[int, int]]:
    """Candidate quotes as (first, last) sentence indexes: each sentence, with the next one joined to a
    sentence too short to stand alone."""
    windows = []
    for index, span in enumerate(spans):
        last = index + 1 if len(span.text) < _SHORT_SENTENCE and index + 1 < len(spans) else index
        windows.append((index, last))
    return windows


class RecentVectors:
    """``embed`` with the vectors of the texts it embedded lately kept: a chunk's sentences come back with every
    question that cites the chunk (a follow-up, most often), and their embedding is nearly all of the evidence's
    time on a CPU. Bounded (least recently used first out) and safe for threads answering side by side."""

    def __init__(self, embed: Embed, max_texts: int):
        self._embed = embed
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=max_texts)
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            known = {text: self._vectors.get(text) for text in texts}
        missing = [text for text, vector in known.items() if vector is None]
        if missing:
            fresh = np.asarray(self._embed(missing), dtype=np.float32)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[text] = known[text] = vector
        return np.stack([known[text] for text in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


class EvidenceFinder:
    """Chooses quotes and grounds answers; ``embed`` is the embedding model (None: lexical only)."""

    def __init__(
        self,
        embed: Embed | None,
        *,
        method: QuoteMethod = "both",
        grounding_method: QuoteMethod = "both",
        support_threshold: float = 0.5,
        neighbours: tuple[int, int] = (0, 0),
        question_weight: float = QUESTION_WEIGHT,
        answer_weight: float = ANSWER_WEIGHT,
    ):
        if embed is None and (method != "lexical" or grounding_method != "lexical"):
            raise ValueError(f"quote method {method!r} / grounding {grounding_method!r} needs the embedding model")
        self._embed = embed
        self._method = method
        self._grounding_method = grounding_method
        self._threshold = support_threshold
        self._before, self._after = neighbours  # sentences a quote takes around the one that matched
        # Word stems are needed only when a method compares them.
        self._uses_stems = bool({method, grounding_method} & {"lexical", "both"})
        self._question_weight = question_weight
        self._answer_weight = answer_weight

    def find(
        self,
        question: str,
        answer: str,
        sources: dict[int, str],
        retrieval_scores: dict[int, float] | None = None,
        word_frequencies: WordFrequencies | None = None,
    ) -> Evidence:
        """``sources``: each source's number and chunk text. ``answer``: "" when there is none (abstained).
        ``retrieval_scores``: each source's cosine to the question. ``word_frequencies``: how rare the question's
        words are in the collection (None: each weighs the same). The order: ``question_weight`` times the quote's
        match to the question, plus ``answer_weight`` times the source's support for the answer, plus the
        retrieval score."""
        chunk_sentences = {n: sentences(text) for n, text in sources.items()}
        windows = self._windows(sources, chunk_sentences)
        claims, claim_markers = claims_of(answer)
        similarity = self._similarity(question, claims, sources, chunk_sentences, windows, word_frequencies)
        quotes = self._quotes(windows, similarity[0])
        # How well each source's quote matches the question; with no answer, it is the source's support too.
        question_match = {n: float(quotes[n].score) if n in quotes else 0.0 for n in sources}
        support, grounding = self._grounding(claims, claim_markers, windows, similarity[1:], sources)
        if not claims:
            support = dict(question_match)
        cited = set(cited_numbers(answer))
        evidence = {n: SourceEvidence(quotes.get(n), round(support.get(n, 0.0), 4), n in cited) for n in sources}
        order = self._order(sources, question_match, support if claims else {}, retrieval_scores or {})
        return Evidence(evidence, order, grounding)

    def _windows(self, sources: dict[int, str], chunk_sentences: dict[int, list[Span]]) -> list[Window]:
        """Every candidate quote of every source, in order."""
        windows = []
        for n, spans in chunk_sentences.items():
            for first, last in quote_windows(spans):
                low, high = max(0, first - self._before), min(len(spans) - 1, last + self._after)
                quote = Quote(sources[n][spans[low].start : spans[high].end], spans[low].start, spans[high].end, 0.0)
                windows.append(Window(n, (first, last), (low, high), quote))
        return windows

    def _similarity(
        self,
        question: str,
        claims: list[Span],
        sources: dict[int, str],
        chunk_sentences: dict[int, list[Span]],
        windows: list[Window],
        word_frequencies: WordFrequencies | None,
    ) -> np.ndarray:
        """(1 + claims) x windows: row 0 how well each window answers the question (by the quote method), the
        other rows how well it supports each of the answer's sentences (by the grounding method)."""

        def core_text(window: Window) -> str:
            # What a window is judged by: its own sentence(s), without the neighbours its quote takes.
            spans = chunk_sentences[window.n]
            return sources[window.n][spans[window.core[0]].start : spans[window.core[1]].end]

        cores = [core_text(window) for window in windows]
        # The quote answers the question, whatever the answer says: a small model's answer is often wrong, and
        # its words then pulled the quote away from the sentence that answers (docs/api.md, "Evidence").
        queries = [question] + [strip_markers(claim.text) for claim in claims]
        # Each sentence is stemmed once; a window's stems (its own sentences', or its whole quote's) are their union.
        sentence_stems = {
            n: [stems(span.text) for span in spans] if self._uses_stems else [] for n, spans in chunk_sentences.items()
        }

        def stems_of(n: int, first: int, last: int) -> set[str]:
            return set().union(*sentence_stems[n][first : last + 1])

        lexical, cosine = self._agreements(queries, cores, [stems_of(w.n, *w.core) for w in windows])
        if lexical is not None:
            # The question's words are looked for in the whole quote a window would give, each counted by its
            # rarity; the meaning (cosine) is the window's own sentence's.
            weights, asked = rarity_weights(word_frequencies), stems(question)
            lexical[0] = [lexical_agreement(asked, stems_of(w.n, *w.around), weights) for w in windows]
        return np.vstack(
            [combine(self._method, lexical, cosine)[:1], combine(self._grounding_method, lexical, cosine)[1:]]
        )

    @staticmethod
    def _quotes(windows: list[Window], answers_question: np.ndarray) -> dict[int, Quote]:
        """Each source's best window for the question (none where no window matches at all)."""
        best: dict[int, tuple[float, Quote]] = {}
        for column, window in enumerate(windows):
            score = float(answers_question[column])
            if score > 0 and (window.n not in best or score > best[window.n][0]):
                best[window.n] = (score, window.quote)
        return {n: dataclasses.replace(quote, score=round(score, 4)) for n, (score, quote) in best.items()}

    def _grounding(
        self,
        claims: list[Span],
        claim_markers: list[list[int]],
        windows: list[Window],
        supports_claim: np.ndarray,
        sources: dict[int, str],
    ) -> tuple[dict[int, float], list[GroundedSentence]]:
        """Each source's best support for any of the answer's sentences, and each sentence with the sources that
        back it (those over the threshold, and those its markers name), best first."""
        support: dict[int, float] = {}
        grounding: list[GroundedSentence] = []
        for row, claim in enumerate(claims):
            per_source: dict[int, float] = {}
            for column, window in enumerate(windows):
                per_source[window.n] = max(per_source.get(window.n, 0.0), float(supports_claim[row, column]))
            for n, value in per_source.items():
                support[n] = max(support.get(n, 0.0), value)
            best = max(per_source.values(), default=0.0)
            marked = [n for n in claim_markers[row] if n in sources]
            backing = sorted(
                {n for n, value in per_source.items() if value >= self._threshold} | set(marked),
                key=lambda n: -per_source.get(n, 0.0),
            )
            grounding.append(
                GroundedSentence(claim.text, claim.start, claim.end, backing, round(best, 4), best >= self._threshold)
            )
        return support, grounding

    def _order(
        self,
        sources: dict[int, str],
        question_match: dict[int, float],
        answer_support: dict[int, float],
        retrieval: dict[int, float],
    ) -> list[int]:
        """The sources best first: the quote's match with the question, the answer's support, retrieval."""
        return sorted(
            sources,
            key=lambda n: (
                -(
                    self._question_weight * question_match[n]
                    + self._answer_weight * answer_support.get(n, 0.0)
                    + retrieval.get(n, 0.0)
                ),
                n,
            ),
        )

    def _agreements(
        self, queries: list[str], candidates: list[str], candidate_stems: list[set[str]]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(queries x candidates) shared-stem agreement and cosine, each computed once and only when one of
        the two methods uses it."""
        methods = {self._method, self._grounding_method}
        lexical = cosine = None
        if self._uses_stems:
            query_stems = [stems(text) for text in queries]
            lexical = np.array(
                [[lexical_agreement(q, c) for c in candidate_stems] for q in query_stems], dtype=np.float32
            ).reshape(len(queries), len(candidates))
        if methods & {"embedding", "both"} and candidates:
            vectors = np.asarray(self._embed(queries + candidates), dtype=np.float32)
            cosine = np.clip(vectors[: len(queries)] @ vectors[len(queries) :].T, 0.0, 1.0)
        elif methods & {"embedding", "both"}:
            cosine = np.zeros((len(queries), 0), dtype=np.float32)
        return lexical, cosine


def combine(method: QuoteMethod, lexical: np.ndarray | None, cosine: np.ndarray | None) -> np.ndarray:
    """Agreement in 0-1 by one method: shared stems, cosine, or their mean."""
    if method == "lexical":
        return lexical
    return cosine if method == "embedding" else (cosine + lexical) / 2
