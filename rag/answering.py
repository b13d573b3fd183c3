"""Answering a question: retrieve, decide whether to abstain, pack the prompt, ask the LLM. No HTTP here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from rag.llm import Delta, LLMClient, Message, Usage
from rag.metrics import Metrics
from rag.prompting import NOT_FOUND_ANSWER, TokenCountCache, pack_prompt
from rag.retrieval import Filters, Retriever
from rag.settings import Settings
from rag.store import ChunkHit


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    collection: str
    top_k: int
    max_tokens: int
    temperature: float
    filters: Filters = field(default_factory=Filters)
    history: list[Message] = field(default_factory=list)  # earlier turns of a conversation
    extra_instructions: str = ""  # a chat client's own system message


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    document_id: str
    filename: str
    page: int | None
    text: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "document_id": self.document_id,
            "filename": self.filename,
            "page": self.page,
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass(slots=True)
class Prepared:
    """Everything decided before generation starts: what to send, what to cite, or to abstain (and why,
    with the closest passages, so a person can see it)."""

    messages: list[Message]
    citations: list[Citation]
    abstained: bool
    model: str
    retrieval_ms: float
    prompt_ms: float
    abstain_reason: str | None = None
    closest: list[Citation] = field(default_factory=list)


@dataclass(slots=True)
class Answer:
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage
    abstained: bool
    finish_reason: str | None
    timings: dict[str, float]
    abstain_reason: str | None = None
    closest: list[Citation] = field(default_factory=list)


def _citation(n: int, hit: ChunkHit) -> Citation:
    meta = hit.metadata
    return Citation(n, meta.get("document_id", ""), meta.get("filename", ""), meta.get("page"), hit.text, hit.score)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


class QueryService:
    def __init__(
        self,
        retriever: Retriever,
        llm: LLMClient,
        settings: Settings,
        token_counts: TokenCountCache,
        metrics: Metrics | None = None,
    ):
        self._retriever = retriever
        self._llm = llm
        self._settings = settings
        self._token_counts = token_counts
        self._metrics = metrics

    def question(
        self,
        text: str,
        *,
        collection: str,
        top_k: int | None,
        filters: Filters,
        max_tokens: int | None,
        temperature: float | None,
        history: list[Message] | None = None,
        extra_instructions: str = "",
    ) -> Question:
        """A question with the service's defaults filled in where the caller left them out."""
        settings = self._settings
        return Question(
            question=text,
            collection=collection,
            top_k=top_k or settings.top_k,
            max_tokens=max_tokens or settings.max_tokens,
            temperature=settings.temperature if temperature is None else temperature,
            filters=filters,
            history=history or [],
            extra_instructions=extra_instructions,
        )

    async def retrieve(self, collection: str, query: str, top_k: int, filters: Filters) -> list[ChunkHit]:
        # Embedding the query and the store lookup block: keep them off the event loop.
        started = time.perf_counter()
        hits = await run_in_threadpool(self._retriever.search, collection, query, top_k, filters)
        if self._metrics:
            self._metrics.retrieval_seconds.observe(time.perf_counter() - started)
        return hits

    async def prepare(self, q: Question) -> Prepared:
        started = time.perf_counter()
        hits = await self.retrieve(q.collection, q.question, q.top_k, q.filters)
        policy = self._settings.abstention
        best_score = max((hit.score for hit in hits), default=None)
        unknown_words: list[str] = []
        if policy.unknown_words_matter(best_score):  # one keyword-index lookup per word: only when it can decide
            unknown_words = await run_in_threadpool(self._retriever.unknown_words, q.collection, q.question)
        retrieval_ms = _ms(started)
        relevant = [hit for hit in hits if hit.score >= policy.below_score]
        reason = policy.reason(best_score, unknown_words)
        if reason is not None:
            # Nothing relevant: a fixed reply, and the LLM is never asked (it would only make something up).
            closest = [_citation(n, hit) for n, hit in enumerate(hits, start=1)]
            return Prepared([], [], True, self._model_name(), retrieval_ms, 0.0, reason, closest)
        started = time.perf_counter()
        packed = await pack_prompt(
            self._llm,
            q.question,
            q.history,
            relevant,
            max_tokens=q.max_tokens,
            system_role=self._settings.llm_system_role,
            extra_instructions=q.extra_instructions,
            cache=self._token_counts,
        )
        citations = [_citation(source.n, source.hit) for source in packed.sources]
        return Prepared(packed.messages, citations, False, self._model_name(), retrieval_ms, _ms(started))

    def _model_name(self) -> str:
        info = getattr(self._llm, "cached_info", None)
        return info.id if info else (self._settings.llm_model or "")

    async def answer(self, q: Question) -> Answer:
        prepared = await self.prepare(q)
        if prepared.abstained:
            self._count("abstained")
            return Answer(
                NOT_FOUND_ANSWER,
                [],
                prepared.model,
                Usage(),
                True,
                "stop",
                self.timings(prepared, 0.0),
                prepared.abstain_reason,
                prepared.closest,
            )
        with self._generation() as started:
            completion = await self._llm.complete(prepared.messages, max_tokens=q.max_tokens, temperature=q.temperature)
        return Answer(
            completion.text,
            prepared.citations,
            prepared.model,
            completion.usage,
            False,
            completion.finish_reason,
            self.timings(prepared, _ms(started)),
        )

    async def stream(self, prepared: Prepared, q: Question) -> AsyncIterator[Delta]:
        """The answer's text as it is generated; the last item has the finish reason and usage."""
        if prepared.abstained:
            self._count("abstained")
            yield Delta(text=NOT_FOUND_ANSWER)
            yield Delta(finish_reason="stop", usage=Usage())
            return
        first_token = None
        with self._generation() as started:
            async for delta in self._llm.stream(prepared.messages, max_tokens=q.max_tokens, temperature=q.temperature):
                if delta.text and first_token is None:
                    first_token = time.perf_counter()
                    if self._metrics:
                        self._metrics.time_to_first_token_seconds.observe(first_token - started)
                yield delta

    @contextmanager
    def _generation(self) -> Iterator[float]:
        """Count one generation's outcome and time it; yields its start (time.perf_counter)."""
        started = time.perf_counter()
        try:
            yield started
        except Exception:
            self._count("error")
            raise
        self._count("answered")
        if self._metrics:
            self._metrics.generation_seconds.observe(time.perf_counter() - started)

    def _count(self, outcome: str) -> None:
        if self._metrics:
            self._metrics.answers.labels(outcome).inc()

    @staticmethod
    def timings(prepared: Prepared, generation_ms: float) -> dict[str, float]:
        return {"retrieval_ms": prepared.retrieval_ms, "prompt_ms": prepared.prompt_ms, "generation_ms": generation_ms}
