"""Prometheus metrics: HTTP traffic (prometheus-fastapi-instrumentator) and the service's own series.

Each app has its own registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds: from a few milliseconds (a cached retrieval) to minutes (a long answer on a CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.documents_ingested = Counter(
            "rag_documents_ingested", "Documents ingested and ready.", registry=self.registry
        )
        self.documents_failed = Counter(
            "rag_documents_failed", "Documents whose ingestion failed.", registry=self.registry
        )
        self.chunks_written = Counter("rag_chunks_written", "Chunks embedded and stored.", registry=self.registry)
        self.retrieval_seconds = Histogram(
            "rag_retrieval_seconds",
            "Query embedding and vector search.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generation_seconds = Histogram(
            "rag_generation_seconds",
            "LLM generation of one answer, first token to last.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token_seconds = Histogram(
            "rag_time_to_first_token_seconds",
            "From the start of generation to the first token of a streamed answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter("rag_answers", "Questions answered, by outcome.", ["outcome"], registry=self.registry)

    # The ingestion worker's events (see ingest.ports.IngestEvents).
    def document_ready(self, chunks: int) -> None:
        self.documents_ingested.inc()
        self.chunks_written.inc(chunks)

    def document_failed(self) -> None:
        self.documents_failed.inc()

    # Answering's events (see rag.ports.AnsweringEvents).
    def retrieved(self, seconds: float) -> None:
        self.retrieval_seconds.observe(seconds)

    def first_token(self, seconds: float) -> None:
        self.time_to_first_token_seconds.observe(seconds)

    def generated(self, seconds: float) -> None:
        self.generation_seconds.observe(seconds)

    def answered(self, outcome: str) -> None:
        self.answers.labels(outcome).inc()
