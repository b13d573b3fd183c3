"""Answering a question: retrieve, decide whether to abstain, pack the prompt, ask the LLM. No HTTP here."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from rag.ports import AnsweringEvents, ChunkHit, Delta, LLMClient, Message, NoAnsweringEvents, Usage
from rag.services.abstention import AbstentionPolicy
from rag.services.documents import WholeDocuments
from rag.services.evidence import Evidence, EvidenceFinder, GroundedSentence, Quote, SourceEvidence
from rag.services.followups import fuse, retrieval_queries
from rag.services.prompting import NOT_FOUND_ANSWER, PackedPrompt, PromptTooLong, TokenCountCache, pack_prompt
from rag.services.retrieval import Filters, Retriever
from rag.settings import AnsweringConfig


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
    n: int  # the number the prompt gave the source, and the answer's markers use
    document_id: str
    filename: str
    page: int | None
    text: str
    score: float  # retrieval: cosine similarity to the question
    chunk_start: int | None = None  # where the chunk's text starts in the document
    chunk_index: int | None = None  # the chunk's place in its document, to read its neighbours
    # Evidence, once the answer is known (rag/services/evidence.py):
    quote: Quote | None = None
    cited: bool = False
    support: float | None = None

    def with_evidence(self, evidence: SourceEvidence) -> Citation:
        return dataclasses.replace(self, quote=evidence.quote, cited=evidence.cited, support=evidence.support)


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
    retrieval_query: str = ""  # what was searched: the question, or it with the conversation's subject
    context: str = "chunks"  # what the prompt holds: "chunks", or "documents" (whole, when they fit)


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
    grounding: list[GroundedSentence] = field(default_factory=list)
    retrieval_query: str = ""
    context: str = "chunks"


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a streamed answer: why it stopped, its usage, and its evidence."""

    finish_reason: str | None
    usage: Usage
    citations: list[Citation]
    grounding: list[GroundedSentence]


def _citation(n: int, hit: ChunkHit) -> Citation:
    meta = hit.metadata
    return Citation(
        n,
        meta.get("document_id", ""),
        meta.get("filename", ""),
        meta.get("page"),
        hit.text,
        hit.score,
        chunk_start=meta.get("start"),
        chunk_index=meta.get("chunk_index"),
    )


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


class QueryService:
    def __init__(
        self,
        retriever: Retriever,
        llm: LLMClient,
        config: AnsweringConfig,
        token_counts: TokenCountCache,
        events: AnsweringEvents | None = None,
        evidence: EvidenceFinder | None = None,
        documents: WholeDocuments | None = None,
        *,
        fusion_k: int,
        system_role: bool,
        chunk_stride: int,
        model_name: str | None,
    ):
        """``fusion_k``: reciprocal rank fusion's constant, for a follow-up's several searches;
        ``system_role``: whether the chat template takes a system message; ``chunk_stride``: tokens from one
        chunk's start to the next's (a bound on what a whole document costs); ``model_name``: the configured
        model, named in answers until the server has said which it serves."""
        self._retriever = retriever
        self._llm = llm
        self._config = config
        self._policy = AbstentionPolicy.from_config(config)
        self._fusion_k = fusion_k
        self._system_role = system_role
        self._chunk_stride = chunk_stride
        self._configured_model = model_name
        self._token_counts = token_counts
        self._events = events or NoAnsweringEvents()
        self._evidence = evidence
        self._documents = documents

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
        config = self._config
        return Question(
            question=text,
            collection=collection,
            top_k=top_k or config.top_k,
            max_tokens=max_tokens or config.max_tokens,
            temperature=config.temperature if temperature is None else temperature,
            filters=filters,
            history=history or [],
            extra_instructions=extra_instructions,
        )

    async def retrieve(self, collection: str, query: str, top_k: int, filters: Filters) -> list[ChunkHit]:
        # Embedding the query and the store lookup block: keep them off the event loop.
        started = time.perf_counter()
        hits = await run_in_threadpool(self._retriever.search, collection, query, top_k, filters)
        self._events.retrieved(time.perf_counter() - started)
        return hits

    async def prepare(self, q: Question) -> Prepared:
        started = time.perf_counter()
        queries = await retrieval_queries(q.question, q.history, self._config.followup_query, self._llm)
        searches = (self.retrieve(q.collection, text, q.top_k, q.filters) for text in queries)
        hits = fuse(list(await asyncio.gather(*searches)), q.top_k, self._fusion_k)
        search_text = queries[0]
        policy = self._policy
        best_score = max((hit.score for hit in hits), default=None)
        unknown_words: list[str] = []
        if policy.unknown_words_matter(best_score):  # one keyword-index lookup per word: only when it can decide
            unknown_words = await run_in_threadpool(self._retriever.unknown_words, q.collection, search_text)
        retrieval_ms = _ms(started)
        relevant = [hit for hit in hits if hit.score >= policy.below_score]
        reason = policy.reason(best_score, unknown_words)
        # Documents the caller named are read whole when they fit, whatever retrieval scored: the question
        # may be about the document as a whole ("summarise it"). A small collection is read whole only when
        # retrieval found something relevant in it.
        named = q.filters.document_ids is not None
        if reason is not None and not named:
            return await self._abstain(q, hits, reason, retrieval_ms, search_text)
        started = time.perf_counter()
        whole = await self._whole_documents(q, hits)
        if whole is not None:
            packed, citations = whole
            return Prepared(
                packed.messages,
                citations,
                False,
                self._model_name(),
                retrieval_ms,
                _ms(started),
                retrieval_query=search_text,
                context="documents",
            )
        if reason is not None:
            return await self._abstain(q, hits, reason, retrieval_ms, search_text)
        packed = await self._pack(q, relevant)
        citations = [_citation(source.n, source.hit) for source in packed.sources]
        prompt_ms = _ms(started)
        return Prepared(
            packed.messages, citations, False, self._model_name(), retrieval_ms, prompt_ms, retrieval_query=search_text
        )

    async def _abstain(
        self, q: Question, hits: list[ChunkHit], reason: str, retrieval_ms: float, search_text: str
    ) -> Prepared:
        """Nothing relevant: a fixed reply, and the LLM is never asked (it would only make something up). The
        closest passages come back with their quotes, so a person can see why."""
        closest = [_citation(n, hit) for n, hit in enumerate(hits, start=1)]
        closest, _ = await self.with_evidence(q.collection, q.question, "", closest)
        return Prepared([], [], True, self._model_name(), retrieval_ms, 0.0, reason, closest, search_text)

    async def _pack(self, q: Question, hits: list[ChunkHit], *, all_or_nothing: bool = False) -> PackedPrompt:
        return await pack_prompt(
            self._llm,
            q.question,
            q.history,
            hits,
            max_tokens=q.max_tokens,
            system_role=self._system_role,
            extra_instructions=q.extra_instructions,
            cache=self._token_counts,
            all_or_nothing=all_or_nothing,
        )

    async def _whole_documents(self, q: Question, hits: list[ChunkHit]) -> tuple[PackedPrompt, list[Citation]] | None:
        """The prompt with the documents in scope whole, and one citation per document (its best retrieved
        chunk, for the page and the quote), or None when they do not all fit the context."""
        if self._documents is None or not self._config.whole_documents or q.filters.metadata:
            return None
        info = await self._llm.model_info()
        budget = info.max_model_len - q.max_tokens
        # A cheap bound before any text is fetched: each chunk adds at least its stride in new tokens.
        records = await run_in_threadpool(
            self._documents.in_scope, q.collection, q.filters.document_ids, budget // self._chunk_stride + 1
        )
        if not records:
            return None
        texts = await run_in_threadpool(lambda: [self._documents.text(record) for record in records])
        best: dict[str, ChunkHit] = {}
        for hit in hits:
            best.setdefault(hit.metadata.get("document_id", ""), hit)
        documents = [
            ChunkHit(
                record.id,
                text,
                {"document_id": record.id, "filename": record.filename, "chunk_index": 0},
                best[record.id].score if record.id in best else 0.0,
            )
            for record, text in zip(records, texts, strict=True)
            if text.strip()
        ]
        try:
            packed = await self._pack(q, documents, all_or_nothing=True)
        except PromptTooLong:  # they do not all fit: chunks it is
            return None
        citations = []
        for source in packed.sources:
            document = source.hit
            chunk = best.get(document.id)
            if chunk is None:
                citations.append(Citation(source.n, document.id, document.metadata["filename"], None, "", 0.0))
            else:
                citations.append(dataclasses.replace(_citation(source.n, chunk), n=source.n))
        return packed, citations

    def _model_name(self) -> str:
        info = self._llm.cached_info
        return info.id if info else (self._configured_model or "")

    async def answer(self, q: Question) -> Answer:
        prepared = await self.prepare(q)
        if prepared.abstained:
            self._events.answered("abstained")
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
                retrieval_query=prepared.retrieval_query,
            )
        with self._generation() as started:
            completion = await self._llm.complete(prepared.messages, max_tokens=q.max_tokens, temperature=q.temperature)
        generation_ms = _ms(started)
        citations, grounding = await self.with_evidence(q.collection, q.question, completion.text, prepared.citations)
        return Answer(
            completion.text,
            citations,
            prepared.model,
            completion.usage,
            False,
            completion.finish_reason,
            self.timings(prepared, generation_ms),
            grounding=grounding,
            retrieval_query=prepared.retrieval_query,
            context=prepared.context,
        )

    async def stream(self, prepared: Prepared, q: Question) -> AsyncIterator[Delta | Finished]:
        """The answer's text as it is generated (Delta items), then one Finished item: the finish reason,
        usage, and the citations ranked with their evidence."""
        if prepared.abstained:
            self._events.answered("abstained")
            yield Delta(text=NOT_FOUND_ANSWER)
            yield Finished("stop", Usage(), [], [])
            return
        first_token = None
        parts: list[str] = []
        finished = False
        with self._generation() as started:
            async for delta in self._llm.stream(prepared.messages, max_tokens=q.max_tokens, temperature=q.temperature):
                if delta.text:
                    parts.append(delta.text)
                    if first_token is None:
                        first_token = time.perf_counter()
                        self._events.first_token(first_token - started)
                    yield delta
                if delta.usage is not None and not finished:
                    finished = True
                    citations, grounding = await self.with_evidence(
                        q.collection, q.question, "".join(parts), prepared.citations
                    )
                    yield Finished(delta.finish_reason, delta.usage, citations, grounding)
        if not finished:  # a server that sends no usage at the end
            citations, grounding = await self.with_evidence(
                q.collection, q.question, "".join(parts), prepared.citations
            )
            yield Finished(None, Usage(), citations, grounding)

    async def with_evidence(
        self, collection: str, question: str, answer: str, citations: list[Citation]
    ) -> tuple[list[Citation], list[GroundedSentence]]:
        """The citations with their quotes, best first (EvidenceFinder.find), and the answer's sentences grounded."""
        if self._evidence is None or not citations:
            return citations, []
        by_number = {citation.n: citation for citation in citations}

        def find() -> Evidence:
            return self._evidence.find(
                question,
                answer,
                {n: citation.text for n, citation in by_number.items()},
                {n: citation.score for n, citation in by_number.items()},
                self._retriever.word_frequencies(collection, question),
            )

        evidence = await run_in_threadpool(find)
        ranked = [by_number[n].with_evidence(evidence.sources[n]) for n in evidence.order]
        return ranked, evidence.grounding

    @contextmanager
    def _generation(self) -> Iterator[float]:
        """Count one generation's outcome and time it; yields its start (time.perf_counter)."""
        started = time.perf_counter()
        try:
            yield started
        except Exception:
            self._events.answered("error")
            raise
        self._events.answered("answered")
        self._events.generated(time.perf_counter() - started)

    @staticmethod
    def timings(prepared: Prepared, generation_ms: float) -> dict[str, float]:
        return {"retrieval_ms": prepared.retrieval_ms, "prompt_ms": prepared.prompt_ms, "generation_ms": generation_ms}
