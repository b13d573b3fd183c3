"""The composition root: the service's long-lived parts, built once from the settings and started and stopped
together. Each swappable part is chosen here, in one place, and only here are the concrete classes named: the
HTTP API, the CLI and the benchmarks all take their QueryService from ``Runtime.query_service``.

The embedding model takes seconds to load, so it loads in the background: uploads are accepted meanwhile and
wait in the queue; /readyz says when it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ingest.audit import AuditTrail
from ingest.chunking import Chunker
from ingest.parsing.parse_pool import ParsePool
from ingest.pipeline import DocumentPipeline
from ingest.ports import Embedder, IngestEvents
from ingest.service import IngestService
from ingest.storage.db import open_database
from ingest.storage.files import FileStore
from ingest.storage.records import DocumentRecords
from ingest.worker import IngestWorker, WorkerDeps
from rag.components.chroma_store import ChromaStore
from rag.components.embedding.query_batching import BatchingEmbedder
from rag.components.hybrid_store import HybridChunkStore
from rag.components.keyword_postgres import PostgresKeywordIndex
from rag.components.keyword_sqlite import KeywordIndex
from rag.components.llm.local_vllm import LocalVLLM
from rag.components.llm.openai_client import OpenAICompatibleLLM
from rag.components.page_images import PageImages
from rag.ports import AnsweringEvents, KeywordSearch, LLMClient
from rag.services.answering import QueryService
from rag.services.documents import WholeDocuments
from rag.services.evidence import EvidenceFinder, RecentVectors
from rag.services.prompting import TokenCountCache
from rag.services.retrieval import FusionWeights, Retriever
from rag.settings import EmbeddingConfig, Settings

log = logging.getLogger(__name__)
# Sentences (and questions) whose vectors the evidence keeps: ~3 KB each with mpnet, ~12 MB in all.
EVIDENCE_VECTORS_KEPT = 4096


def load_embedder(config: EmbeddingConfig, models_dir: Path) -> Embedder:
    from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder, choose_backend

    backend, device = choose_backend(config.backend, config.device)
    if backend in ("onnx", "onnx-int8"):
        from rag.components.embedding.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(
            config.model,
            batch_size=config.batch_size,
            models_dir=models_dir,
            threads=config.threads,
            int8=backend == "onnx-int8",
        )
    return SentenceTransformerEmbedder(
        config.model,
        device=device,
        batch_size=config.batch_size,
        models_dir=models_dir,
        precision=config.precision,
    )


class ServiceNotReady(RuntimeError):
    pass


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        with_llm: bool = False,
        events: IngestEvents | None = None,
        answering_events: AnsweringEvents | None = None,
    ):
        """``with_llm``: build the LLM client (and start the embedded vLLM when no LLM server is configured), as
        serving does. ``events``: ingestion's (the server's metrics); ``answering_events``: answering's."""
        self.settings = settings
        storage = settings.storage
        storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.records = DocumentRecords(open_database(storage.database_dsn, storage.records_path))
        self.files = FileStore(storage.originals_dir)
        self.store = ChromaStore.from_config(storage, settings.embedding.model)
        self.keywords: KeywordIndex | PostgresKeywordIndex = (
            PostgresKeywordIndex(self.records.database) if storage.database_dsn else KeywordIndex(storage.keywords_path)
        )
        # Ingestion writes vectors and keywords together, so the two indexes never drift apart.
        self.chunk_store = HybridChunkStore(self.store, self.keywords)
        audit = AuditTrail(settings.access.audit_log or storage.data_dir / "audit.jsonl")
        self.ingest = IngestService(self.records, self.files, self.chunk_store, settings.ingest_limits, audit)
        self.page_images = PageImages(cache_bytes=settings.server.page_cache_bytes)
        self.embedder: Embedder | None = embedder
        self._parse_pool: ParsePool | None = None
        self._query_embedder: BatchingEmbedder | None = None
        self._evidence_vectors: RecentVectors | None = None
        self._events = events
        self._answering_events = answering_events
        # Shared by all requests: keyword searches are short, and SQLite serialises them per index anyway.
        self._keyword_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword-search")
        self.token_counts = TokenCountCache()
        self._query_service: QueryService | None = None
        self.worker: IngestWorker | None = None
        self.startup_error: str | None = None
        self._loader: threading.Thread | None = None
        # The embedded LLM, only when serving and no LLM server is configured.
        self.local_llm: LocalVLLM | None = None
        self.local_llm_error: str | None = None
        if with_llm and not settings.llm.base_url:
            self.local_llm = LocalVLLM(settings.local_llm, storage.models_dir, storage.data_dir / "logs" / "vllm.log")
        self.llm: LLMClient | None = self.make_llm() if with_llm else None

    @property
    def llm_base_url(self) -> str | None:
        return self.settings.llm.base_url or (self.local_llm.base_url if self.local_llm else None)

    @property
    def llm_model(self) -> str | None:
        return self.settings.llm.model or (self.local_llm.served_name if self.local_llm else None)

    def make_llm(self, **overrides) -> OpenAICompatibleLLM:
        """A client of the configured (or embedded) LLM server; ``overrides`` replace its options (benchmarks)."""
        config = self.settings.llm
        options = {
            "model": self.llm_model,
            "api_key": config.api_key.get_secret_value(),
            "timeout_s": config.timeout_s,
            "connect_timeout_s": config.connect_timeout_s,
            "sampling": config.sampling_guard,
        }
        return OpenAICompatibleLLM(self.llm_base_url, **{**options, **overrides})

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self, *, run_worker: bool = True, wait: bool = False) -> None:
        """Recover from an earlier crash, then load the model and start the worker in the background. Without
        the worker (an API-only process beside `rag worker` processes) recovery is the workers' job."""
        if run_worker:
            self.ingest.recover()
        self._loader = threading.Thread(
            target=self._load_and_start, args=(run_worker,), name="model-loader", daemon=True
        )
        self._loader.start()
        if self.local_llm is not None:
            threading.Thread(target=self._start_local_llm, name="local-llm", daemon=True).start()
        if wait:
            self.wait_ready()

    def _start_local_llm(self) -> None:
        try:
            self.local_llm.start()
        except Exception as exc:
            log.exception("the local LLM could not start")
            self.local_llm_error = str(exc)

    def wait_ready(self, timeout: float | None = None) -> None:
        if self._loader is not None:
            self._loader.join(timeout)
        if self.startup_error:
            raise RuntimeError(self.startup_error)

    def _load_and_start(self, run_worker: bool) -> None:
        try:
            if self.embedder is None:
                self.embedder = load_embedder(self.settings.embedding, self.settings.storage.models_dir)
            # Questions asked at the same time share one forward pass (rag/components/embedding/query_batching.py).
            self._query_embedder = BatchingEmbedder(self.embedder)
            self._evidence_vectors = RecentVectors(self._query_embedder.embed, EVIDENCE_VECTORS_KEPT)
            self.worker = IngestWorker(
                WorkerDeps.of(self.ingest),
                self.make_pipeline(self.embedder),
                self._events,
                active_documents=self.settings.ingestion.active_documents,
                lease_seconds=self.settings.ingestion.job_lease_seconds,
            )
            if run_worker:
                self.worker.start()
        except Exception as exc:
            log.exception("start-up failed")
            self.startup_error = f"{type(exc).__name__}: {exc}"

    def make_pipeline(self, embedder: Embedder) -> DocumentPipeline:
        chunker = Chunker(
            embedder.count_tokens,
            chunk_tokens=min(self.settings.chunking.tokens, embedder.max_tokens),
            overlap_tokens=self.settings.chunking.overlap_tokens,
            max_tokens=embedder.max_tokens,
            context_tokens=self.settings.chunking.context_tokens,
        )
        processes = self.settings.ingestion.parse_processes
        if processes is None:
            # auto: one per core, up to the documents the worker reads at once, and at least two, so that one
            # long PDF's parse never holds up the rest. Parsing in processes keeps it out of this process's
            # GIL, which a parsing thread holds while the embedder and the API wait for it: on 2 cores, 85 PDF
            # pages ingested in 8.1 s against 9.7 s (threads) and 9.7 s (one process), alternating; on a GPU
            # host, parsing is the limit.
            processes = min(max(2, os.cpu_count() or 1), self.settings.ingestion.active_documents)
        if processes and self._parse_pool is None:
            self._parse_pool = ParsePool(processes)
            self._parse_pool.warm_up()
            log.info("parsing documents in %d processes", processes)
        elif not processes:
            log.warning("parsing documents in threads (RAG_PARSE_PROCESSES=0): RAG_PARSE_TIMEOUT_S cannot stop them")
        return DocumentPipeline(
            embedder,
            self.chunk_store,
            chunker,
            self.settings.ingestion.write_batch_size,
            self.settings.ingest_limits,
            parse_pool=self._parse_pool if processes else None,
            document_vector_max_chunks=self.settings.retrieval.document_vector_max_chunks,
            whole_document_vectors=self.settings.retrieval.whole_document_vectors,
            heading_weight=self.settings.retrieval.keyword_heading_weight,
        )

    def retriever(self, *, mode: str | None = None, keywords: KeywordSearch | None = None) -> Retriever:
        """The service's retriever; ``mode`` and ``keywords`` replace the configured ones (evaluation)."""
        if self._query_embedder is None or self.worker is None:
            raise ServiceNotReady(self.startup_error or "the embedding model is still loading")
        config = self.settings.retrieval
        mode = mode or config.mode
        if mode == "adaptive":
            weights = FusionWeights(
                dense=config.rrf_dense_weight,
                keywords=config.adaptive_keyword_weight,
                identifier_keywords=config.adaptive_identifier_keyword_weight,
                documents=config.adaptive_document_weight,
            )
        else:
            weights = FusionWeights(dense=config.rrf_dense_weight, documents=config.rrf_document_weight)
        return Retriever(
            self.records,
            self.store,
            self._query_embedder,
            keywords or self.keywords,
            mode=mode,
            candidates=self.settings.retrieval.candidates,
            rrf_k=self.settings.retrieval.rrf_k,
            weights=weights,
            score_margin=self.settings.retrieval.score_margin,
            keyword_pool=self._keyword_pool,
        )

    def whole_documents(self) -> WholeDocuments:
        return WholeDocuments(
            self.records, self.store, max_documents=self.settings.answering.whole_documents_max_documents
        )

    def evidence_finder(self) -> EvidenceFinder:
        if self._evidence_vectors is None:
            raise ServiceNotReady(self.startup_error or "the embedding model is still loading")
        return EvidenceFinder(
            self._evidence_vectors,
            method=self.settings.evidence.quote_method,
            grounding_method=self.settings.evidence.grounding_method,
            support_threshold=self.settings.evidence.grounding_threshold,
            neighbours=(self.settings.evidence.quote_context_sentences, self.settings.evidence.quote_context_sentences),
        )

    def query_service(self, llm: LLMClient | None = None) -> QueryService:
        """The service that answers questions, as served: retrieval, evidence, whole documents, the answering
        events. Built once, when the embedding model is ready; ``llm`` gives a separate one that talks to
        another client (a benchmark comparing sampling settings)."""
        if llm is None and self._query_service is not None:
            return self._query_service
        if llm is None and self.llm is None:
            raise RuntimeError("this runtime was built without an LLM (with_llm=False)")
        settings = self.settings
        service = QueryService(
            self.retriever(),
            llm or self.llm,
            settings.answering,
            self.token_counts,
            self._answering_events,
            evidence=self.evidence_finder(),
            documents=self.whole_documents(),
            fusion_k=settings.retrieval.rrf_k,
            system_role=settings.llm.system_role,
            chunk_stride=settings.chunking.stride,
            model_name=settings.llm.model,
        )
        if llm is None:
            self._query_service = service
        return service

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def aclose(self) -> None:
        """Close the LLM client (in the event loop that used it), then stop the rest in a worker thread."""
        if self.llm is not None:
            await self.llm.close()
        await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        self._keyword_pool.shutdown(wait=False, cancel_futures=True)
        if self.local_llm is not None:
            self.local_llm.stop()
        if self.worker is not None:
            self.worker.stop()
        if self._parse_pool is not None:
            self._parse_pool.shutdown()
        self.records.close()
        self.keywords.close()

    # --- readiness -----------------------------------------------------------------------------------

    def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok", "loading", or the reason it is not ready."""
        checks: dict[str, str] = {}
        try:
            self.store.heartbeat()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"unreachable: {type(exc).__name__}: {exc}"
        if self.startup_error:
            checks["embedder"] = f"failed: {self.startup_error}"
        else:
            checks["embedder"] = "ok" if self.worker is not None else "loading"
        if self.local_llm is not None and not self.local_llm.healthy:
            checks["llm"] = f"failed: {self.local_llm_error}" if self.local_llm_error else "starting"
        return checks
