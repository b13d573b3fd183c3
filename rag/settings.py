"""The service's one settings object.

Built once at start-up (``Settings()``) from the environment (prefix ``RAG_``) and an optional ``.env``
file, then handed to whatever needs it. Nothing reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.metadata import RESERVED_METADATA_KEYS
from ingest.parsing.limits import CHROMA_MAX_METADATA_KEYS, IngestLimits
from ingest.parsing.ocr import OcrOptions
from rag.ports import SamplingGuard

# Chosen by measurement on data/eval (docs/retrieval.md, "Retrieval quality"); all-MiniLM-L6-v2 embeds ~8x
# faster on a CPU.
PACKAGED_EMBEDDING_MODEL = "sentence-transformers/all-mpnet-base-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # State: SQLite records, uploaded originals, and the embedded Chroma store live here.
    data_dir: Path = Field(default=Path("data/state"), description="Directory for all service state.")
    # Past one machine (docs/many-hosts.md, "Many hosts"): records, the ingestion queue and the keyword index in
    # PostgreSQL (unset: SQLite files in data_dir); the kept originals in a directory every API and worker
    # process shares; a worker's claim on a document lasts this long unless it renews it (every third of it).
    database_url: SecretStr | None = None
    files_dir: Path | None = None
    job_lease_seconds: float = Field(default=60.0, ge=2, le=3600)

    # Chroma: embedded PersistentClient under data_dir unless a server URL is given.
    chroma_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8001 for `chroma run`.")
    chroma_hnsw_ef_search: int = Field(default=100, ge=10, le=2000)

    # Embeddings: a model name or a local path. The two packaged models
    # (rag/components/embedding/packaged_models.py) load offline from PyPI packages; a collection remembers its
    # model and refuses another (`rag reindex`).
    embedding_model: str = PACKAGED_EMBEDDING_MODEL
    # auto: PyTorch (fp16 on a GPU); onnx / onnx-int8: ONNX Runtime on the CPU
    # (rag/components/embedding/sentence_transformer.py, choose_backend).
    embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    embedding_device: str = Field(default="auto", description="auto (a GPU if PyTorch sees one), cpu, cuda, cuda:1")
    embedding_precision: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="PyTorch backend only. auto: float16 on a GPU, bfloat16 on a CPU with native bf16, else float32",
    )
    embedding_threads: int = Field(
        default=0, ge=0, le=256, description="ONNX Runtime's threads; 0 = every core this process may use."
    )
    embedding_batch_size: int = Field(default=32, ge=1, le=1024)

    # Chunking, measured in the embedding model's own tokens so the embedder never truncates a chunk.
    chunk_tokens: int = Field(default=254, ge=16)
    chunk_overlap_tokens: int = Field(default=48, ge=0)
    # Each chunk's context (document title and section headings) is embedded and indexed with it, in at most
    # this many of the model's tokens, taken from the chunk's own budget; 0 turns it off.
    chunk_context_tokens: int = Field(default=0, ge=0, le=128)

    # Ingestion limits: each is named in the error that enforces it.
    max_upload_mb: int = Field(default=100, ge=1)
    max_request_mb: int = Field(default=1024, ge=1, description="Counted while the body streams in, chunked or not.")
    ingest_queue_max: int = Field(default=1000, ge=1, description="Queued documents before uploads get 429.")
    max_metadata_keys: int = Field(
        default=64,
        ge=1,
        # Chroma fails for good on a record with more than 5,461 metadata keys (ingest/parsing/limits.py); the
        # pipeline adds its own keys to every chunk.
        le=CHROMA_MAX_METADATA_KEYS - len(RESERVED_METADATA_KEYS) - 1,
        description="Keys in one document's metadata.",
    )
    max_metadata_bytes: int = Field(default=8192, ge=64, description="One document's metadata, as JSON.")
    max_page_chars: int = Field(default=100_000, ge=1000, description="Text read from one PDF page.")
    max_document_chars: int = Field(default=10_000_000, ge=1000, description="Text read from one document.")
    max_document_chunks: int = Field(default=20_000, ge=1, description="Chunks stored for one document.")
    max_filter_documents: int = Field(default=1000, ge=1, le=10_000, description="Ids in filters.document_ids.")
    # What a document may cost to parse (docs/api.md, Limits): a few KB can inflate to megabytes of PDF operators,
    # gigapixels or a zip a thousand times its size. Each is checked before the expensive step; the time
    # bound stops what they miss (a 1,158-page manual parses in ~60 s here; a 200-page scan, OCR'd, in ~800 s).
    parse_timeout_s: float = Field(
        default=900.0, gt=0, le=86_400, description="Time to parse one document, in a parsing process."
    )
    max_pdf_pages: int = Field(default=10_000, ge=1, description="Pages in one PDF.")
    max_pdf_page_content_mb: float = Field(
        default=4.0, gt=0, description="One PDF page's content stream, decompressed (real pages: <0.25 MB)."
    )
    max_image_pixels: int = Field(default=180_000_000, ge=1_000_000, description="Pixels in one image or frame.")
    max_docx_mb: int = Field(default=256, ge=1, description="A Word document's parts, uncompressed.")
    max_docx_members: int = Field(default=10_000, ge=10, description="Parts in one Word document.")
    max_markup_mb: int = Field(default=32, ge=1, description="One HTML or Markdown file.")
    max_markup_depth: int = Field(default=256, ge=16, le=10_000, description="Nesting in HTML or Markdown.")
    write_batch_size: int = Field(default=64, ge=1, le=5000, description="Chunks embedded and written at once.")
    parse_processes: int | None = Field(
        default=None,
        ge=0,
        le=256,
        description="Processes parsing documents; unset = one per core (at least 2, at most"
        " RAG_INGEST_ACTIVE_DOCUMENTS); 0 = in the worker's own threads.",
    )
    # Scanned pages and images (ingest/parsing/ocr.py): auto reads pages without text with Tesseract when it is
    # installed; force reads every page; off never. Languages are Tesseract's codes joined by '+'.
    ocr: Literal["auto", "off", "force"] = "auto"
    ocr_languages: str = Field(default="eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    ocr_max_pages: int = Field(default=200, ge=1, le=100_000, description="Pages read by OCR per document.")
    ocr_page_seconds: float = Field(default=60.0, gt=0, le=3600, description="Time limit for one page's OCR.")
    ocr_dpi: int = Field(default=300, ge=72, le=600)
    ocr_tesseract_cmd: str = Field(default="tesseract", description="The tesseract program, if not on PATH.")
    ingest_active_documents: int = Field(
        default=4, ge=1, le=64, description="Documents one worker ingests at once, a batch of each in turn."
    )

    # The LLM: any server speaking vLLM's OpenAI-compatible API. Unset: `rag serve` starts a local vLLM on
    # the CPU with the packaged SmolLM2-135M-Instruct.
    llm_base_url: str | None = Field(default=None, description="e.g. http://vllm:8000/v1")
    llm_model: str | None = Field(default=None, description="Served model name; unset = the first served.")
    llm_api_key: SecretStr = SecretStr("EMPTY")
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Longest wait for an answer (or a token).")
    llm_connect_timeout_s: float = Field(default=5.0, gt=0)
    llm_system_role: bool = Field(default=True, description="False for chat templates without a system role.")
    # Against answers that repeat themselves to the length cap (rag/components/llm/openai_client.py,
    # SamplingGuard); the defaults were chosen by bench/repetition.py on the local model (docs/api.md, "Generation
    # that stops").
    llm_repetition_penalty: float = Field(default=1.0, gt=0, le=2)
    llm_frequency_penalty: float = Field(default=1.0, ge=-2, le=2)
    llm_stop: list[str] = Field(default_factory=list, description="Extra stop strings, beyond the model's own.")

    # The embedded local vLLM (only when RAG_LLM_BASE_URL is unset).
    models_dir: Path = Field(default=Path("data/models"), description="Where converted local models are cached.")
    local_llm_port: int = Field(default=0, ge=0, le=65535, description="0 = any free port.")
    local_llm_max_model_len: int = Field(default=4096, ge=512)
    local_llm_kv_cache_gib: int = Field(default=1, ge=1)
    local_llm_start_timeout_s: float = Field(default=600.0, gt=0)

    # Retrieval: dense (embeddings), bm25 (keywords), or both fused by reciprocal rank fusion.
    retrieval_mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    retrieval_candidates: int = Field(default=30, ge=1, le=500, description="Hits each retriever brings to fusion.")
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion's damping constant.")
    rrf_dense_weight: float = Field(default=1.0, ge=0, le=10, description="The dense ranking's weight in the fusion.")
    # Short documents also get one vector each (the mean of their chunks'), ranked as a third list in the
    # fusion; both chosen on the eval's dev split (docs/retrieval.md, "Retrieval quality").
    rrf_document_weight: float = Field(
        default=1.0, ge=0, le=10, description="hybrid: the document vectors' ranking's weight; 0 = not used."
    )
    document_vector_max_chunks: int = Field(
        default=16, ge=0, le=1000, description="Documents of at most this many chunks get a document vector; 0 = none."
    )
    retrieval_score_margin: float = Field(
        default=0.3, ge=0, le=2, description="bm25/hybrid: drop hits this far below the best cosine similarity."
    )

    # Answering.
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved per question by default.")
    # Evidence (rag/services/evidence.py): how a citation's quote is chosen, and how much agreement with some source
    # an answer's sentence needs to count as supported. Both chosen by bench/quotes.py on the PDF eval's dev.
    quote_method: Literal["lexical", "embedding", "both"] = "both"
    quote_context_sentences: int = Field(default=2, ge=0, le=5, description="Sentences a quote takes on each side.")
    grounding_method: Literal["lexical", "embedding", "both"] = "both"
    # Whole documents: when the documents in scope (those a filter names, or a collection of at most this
    # many) fit the model's context by exact token count, they are sent whole instead of chunks.
    whole_documents: bool = True
    whole_documents_max_documents: int = Field(default=20, ge=1, le=1000)
    # Follow-up questions (rag/services/followups.py): search with the recent user turns joined to the question, or
    # with the LLM's standalone rewrite of it (falling back to the former), or with the question alone.
    followup_query: Literal["recent", "llm", "off"] = "recent"
    grounding_threshold: float = Field(default=0.34, ge=0, le=1)
    max_tokens: int = Field(default=256, ge=1, description="Default answer length limit.")
    max_answer_tokens: int = Field(default=4096, ge=1, description="The most max_tokens a request may ask for.")
    temperature: float = Field(default=0.0, ge=0, le=2)
    # Calibrated together on the dev split of both evaluation sets (docs/retrieval.md, "Retrieval quality"): the pair
    # that abstains most while answering at least 98.5% of answerable questions there.
    abstain_below_score: float = Field(
        default=0.28, ge=-1, le=1, description="Best chunk's cosine similarity under which we answer 'not found'."
    )
    abstain_unknown_words_below_score: float = Field(
        default=0.44,
        ge=-1,
        le=1,
        description="The same, when a word of the question is in no chunk of the collection.",
    )

    # Access: with neither set, the service is open (fine on a laptop, not on a network).
    api_keys: SecretStr | None = Field(default=None, description="Comma-separated keys with access to everything.")
    api_keys_file: Path | None = Field(default=None, description="YAML/JSON: key -> list of collections, or '*'.")

    # HTTP.
    # /docs, /redoc and /openapi.json stay open when keys are on: they hold the API's shape (public in this
    # repository), no data, and a browser opening /docs cannot send a key. `false` turns them off.
    api_docs: bool = True
    # The web page at / (rag/server/web): off leaves only the API. A cited PDF page is drawn this many pixels wide
    # (a request may ask for up to page_image_max_width), and drawn pages are kept in a cache of this size.
    web_page: bool = True
    page_image_width: int = Field(default=1000, ge=100, le=4000)
    page_image_max_width: int = Field(default=2000, ge=100, le=4000)
    page_cache_mb: int = Field(default=64, ge=0, le=4096)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator(
        "chroma_url",
        "llm_base_url",
        "llm_model",
        "api_keys",
        "api_keys_file",
        "database_url",
        "files_dir",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # compose passes `${VAR:-}` as an empty string; that means "not set", not "the empty path".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("RAG_CHUNK_OVERLAP_TOKENS must be smaller than RAG_CHUNK_TOKENS")
        if self.max_tokens > self.max_answer_tokens:
            raise ValueError("RAG_MAX_TOKENS must not exceed RAG_MAX_ANSWER_TOKENS")
        if self.page_image_width > self.page_image_max_width:
            raise ValueError("RAG_PAGE_IMAGE_WIDTH must not exceed RAG_PAGE_IMAGE_MAX_WIDTH")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def sampling_guard(self) -> SamplingGuard:
        return SamplingGuard(self.llm_repetition_penalty, self.llm_frequency_penalty, tuple(self.llm_stop))

    @property
    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(
            max_upload_bytes=self.max_upload_bytes,
            queue_max=self.ingest_queue_max,
            max_metadata_keys=self.max_metadata_keys,
            max_metadata_bytes=self.max_metadata_bytes,
            max_page_chars=self.max_page_chars,
            max_document_chars=self.max_document_chars,
            max_document_chunks=self.max_document_chunks,
            parse_timeout_s=self.parse_timeout_s,
            max_pdf_pages=self.max_pdf_pages,
            max_pdf_page_content_bytes=int(self.max_pdf_page_content_mb * 1024 * 1024),
            max_docx_bytes=self.max_docx_mb * 1024 * 1024,
            max_docx_members=self.max_docx_members,
            max_markup_bytes=self.max_markup_mb * 1024 * 1024,
            max_markup_depth=self.max_markup_depth,
            ocr=OcrOptions(
                mode=self.ocr,
                languages=self.ocr_languages,
                max_pages=self.ocr_max_pages,
                page_seconds=self.ocr_page_seconds,
                dpi=self.ocr_dpi,
                tesseract_cmd=self.ocr_tesseract_cmd,
                max_pixels=self.max_image_pixels,
            ),
        )

    @property
    def page_cache_bytes(self) -> int:
        return self.page_cache_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        return self.max_request_mb * 1024 * 1024

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
