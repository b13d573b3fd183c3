"""The HTTP API's request and response shapes; library types never leak into them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from ingest.metadata import INT64, MAX_KEY_CHARS, validate_metadata_key
from ingest.service import COLLECTION_PATTERN, validate_collection
from ingest.storage.records import DocumentRecord, Status
from rag.ports import ChunkHit
from rag.server.api.validation import invalid
from rag.services.answering import Citation
from rag.services.evidence import GroundedSentence
from rag.services.retrieval import Filters

# A collection's name, checked by the same rule as at upload; the schema carries the rule as a pattern.
CollectionName = Annotated[
    str,
    AfterValidator(validate_collection),
    WithJsonSchema({"type": "string", "pattern": COLLECTION_PATTERN, "minLength": 1, "maxLength": 63}),
]
# Request bodies take JSON's types as they are: `true` is not a temperature, nor "5" a top_k (what the
# schema says; pydantic's lax mode would convert them).
STRICT = ConfigDict(strict=True)


def _json_integer(value: object) -> object:
    """JSON Schema counts 5.0 as an integer; strict mode would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A positive integer field of a strict model, as JSON Schema reads "integer" (the bound first, so that the
# schema states it).
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(_json_integer)]
# Offsets beyond any real listing; the bound keeps them inside SQLite's 64-bit integers.
MAX_OFFSET = 1_000_000_000


class FileError(BaseModel):
    filename: str
    reason: str


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Errors of the OpenAI-compatible routes, in OpenAI's shape (every status, 422 included)."""

    error: OpenAIError


class ErrorBody(BaseModel):
    """The body of every error response but 422 (which has FastAPI's validation shape)."""

    detail: str
    files: list[FileError] | None = None


class UploadedDocument(BaseModel):
    id: str = Field(description="The document's id (a new version keeps its document's id).")
    filename: str
    collection: str
    status: Status = Field(description="Of this upload: the new version's, when it replaces a document.")
    sha256: str
    duplicate: bool = Field(description="The same content is in the collection already: nothing was queued.")
    source: str = Field(description="The name that stays across versions (by default the file name).")
    version: int = Field(description="1 for a new document; for a replacement, the version it will be.")
    replacing: bool = Field(
        description="A new version of an existing document: ingested beside it, and swapped in when ready."
    )

    @classmethod
    def of(cls, record: DocumentRecord, duplicate: bool) -> UploadedDocument:
        return cls(
            id=record.document_id,
            filename=record.filename,
            collection=record.collection,
            status=record.status,
            sha256=record.sha256,
            duplicate=duplicate,
            source=record.source,
            version=record.version,
            replacing=record.replaces is not None,
        )


class UploadResponse(BaseModel):
    documents: list[UploadedDocument]


class NextVersionOut(BaseModel):
    """A new version of the document, being ingested beside it (or failed: the document stays as it was)."""

    model_config = ConfigDict(from_attributes=True)  # read off the version's record

    version: int
    status: Status
    error: str | None
    filename: str
    sha256: str
    progress: float


class DocumentOut(BaseModel):
    id: str
    source: str = Field(description="The name that stays across versions: by default the file name.")
    version: int = Field(description="How many versions it has had: 1, then one more for each replacement.")
    filename: str
    collection: str
    status: Status
    error: str | None
    content_type: str
    bytes: int
    sha256: str
    pages: int | None
    pages_parsed: int = Field(description="Pages of a PDF read so far (it moves while a long PDF is parsed).")
    chunks: int | None
    progress: float = Field(
        description="0 to 1: reading the pages counts for the first tenth, writing chunks for the rest."
    )
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    worker: str | None = Field(
        default=None, description="While it is processed: the worker holding it, as host:pid (else null)."
    )
    next_version: NextVersionOut | None = Field(
        default=None,
        description="A replacement being ingested, or one that failed (with its reason); null when there is none.",
    )

    @classmethod
    def of(cls, record: DocumentRecord, next_version: DocumentRecord | None = None) -> DocumentOut:
        return cls(
            id=record.id,
            source=record.source,
            version=record.version,
            filename=record.filename,
            collection=record.collection,
            status=record.status,
            error=record.error,
            content_type=record.content_type,
            bytes=record.bytes,
            sha256=record.sha256,
            pages=record.pages,
            pages_parsed=record.pages_parsed,
            chunks=record.chunks,
            progress=record.progress,
            metadata=record.metadata,
            created_at=record.created_at,
            updated_at=record.updated_at,
            worker=record.worker,
            next_version=NextVersionOut.model_validate(next_version) if next_version is not None else None,
        )


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int


class ChunkOut(BaseModel):
    id: str
    text: str
    chunk_index: int
    page: int | None
    page_end: int | None
    start: int
    end: int
    metadata: dict[str, Any]

    @classmethod
    def of(cls, hit: ChunkHit) -> ChunkOut:
        meta = hit.metadata
        return cls(
            id=hit.id,
            text=hit.text,
            chunk_index=meta["chunk_index"],
            page=meta.get("page"),
            page_end=meta.get("page_end"),
            start=meta["start"],
            end=meta["end"],
            metadata=meta,
        )


class BoxOut(BaseModel):
    """Fractions of the page's width and height, from its top left corner."""

    left: float
    top: float
    right: float
    bottom: float


class PageBoxes(BaseModel):
    page: int
    boxes: list[BoxOut]


class ChunkList(BaseModel):
    document_id: str
    chunks: list[ChunkOut]
    total: int
    limit: int
    offset: int


# --- retrieval and answers -----------------------------------------------------------------------------

# JSON Schema states the 64-bit range exactly (pydantic would write the bounds as rounded floats).
Int64 = Annotated[
    int, Field(ge=-INT64, le=INT64 - 1), WithJsonSchema({"type": "integer", "minimum": -INT64, "maximum": INT64 - 1})
]
MetadataFilterValue = str | Int64 | Annotated[float, Field(allow_inf_nan=False)] | bool
# What a metadata key may be (ingest.metadata): 1-128 characters, not starting with "$", "#" or "chroma:".
METADATA_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": "^(?!chroma:)[^$#]"}
DocumentId = Annotated[str, Field(min_length=1, max_length=64)]


class FiltersIn(BaseModel):
    model_config = STRICT

    document_ids: list[DocumentId] | None = Field(
        default=None,
        min_length=1,
        description="Only chunks of these documents (at most RAG_MAX_FILTER_DOCUMENTS ids).",
    )
    metadata: dict[str, MetadataFilterValue] = Field(
        default_factory=dict,
        description="Only chunks whose metadata (given at upload, or page, filename...) equals these values.",
        json_schema_extra={"propertyNames": METADATA_KEY_SCHEMA},
    )

    @field_validator("metadata")
    @classmethod
    def _keys(cls, metadata: dict[str, MetadataFilterValue]) -> dict[str, MetadataFilterValue]:
        for key in metadata:
            validate_metadata_key(key, reserved_ok=True)
        return metadata

    def to_filters(self, max_documents: int, max_keys: int, loc: tuple[str, ...] = ("body", "filters")) -> Filters:
        """The filters, within the limits that depend on settings (a 422 in FastAPI's shape beyond them)."""
        if self.document_ids is not None and len(self.document_ids) > max_documents:
            raise invalid(
                f"at most {max_documents} document ids (RAG_MAX_FILTER_DOCUMENTS)", (*loc, "document_ids"), "too_long"
            )
        if len(self.metadata) > max_keys:
            raise invalid(f"at most {max_keys} metadata keys (RAG_MAX_METADATA_KEYS)", (*loc, "metadata"), "too_long")
        return Filters(document_ids=self.document_ids, metadata=dict(self.metadata))


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


# What _not_blank checks, as a pattern for the schema: a character Python does not strip. (Python also
# strips \x1c-\x1f, which Unicode's White_Space, and so other regex engines' \s, leave out.)
NOT_BLANK_PATTERN = r"[^\s\x1c-\x1f]"
NonBlank = Annotated[
    str,
    Field(min_length=1, max_length=20_000, json_schema_extra={"pattern": NOT_BLANK_PATTERN}),
    AfterValidator(_not_blank),
]
TopK = Annotated[int, Field(ge=1, le=50), BeforeValidator(_json_integer)]


class RetrieveRequest(BaseModel):
    model_config = STRICT

    query: NonBlank
    collection: CollectionName = "default"
    top_k: TopK = 5
    filters: FiltersIn = Field(default_factory=FiltersIn)


class RetrievedChunk(BaseModel):
    id: str
    text: str
    score: float
    document_id: str
    filename: str
    page: int | None
    chunk_index: int
    ocr: bool = Field(default=False, description="Read by OCR from a scanned page or an image.")

    @classmethod
    def of(cls, hit: ChunkHit) -> RetrievedChunk:
        meta = hit.metadata
        return cls(
            id=hit.id,
            text=hit.text,
            score=round(hit.score, 4),
            document_id=meta["document_id"],
            filename=meta["filename"],
            page=meta.get("page"),
            chunk_index=meta["chunk_index"],
            ocr=bool(meta.get("ocr", False)),
        )


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunk]


MAX_HISTORY_MESSAGES = 100


class HistoryMessage(BaseModel):
    """One earlier turn, in OpenAI's message shape."""

    model_config = STRICT

    role: Literal["user", "assistant"]
    content: str


class QueryRequest(BaseModel):
    model_config = STRICT

    question: NonBlank
    collection: CollectionName = "default"
    top_k: TopK | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)
    stream: bool = False
    max_tokens: PositiveInt | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    history: Annotated[
        list[HistoryMessage],
        Field(max_length=MAX_HISTORY_MESSAGES, description="Earlier turns of the conversation, oldest first."),
    ] = Field(default_factory=list)


class QuoteOut(BaseModel):
    text: str = Field(description="The sentence(s) of the chunk that answer: a verbatim substring of its text.")
    start: int = Field(description="Character offset of the quote in the document's text.")
    end: int
    score: float = Field(description="How well the quote matches the question and answer, 0-1.")


class CitationOut(BaseModel):
    n: int = Field(description="The source's number in the prompt: the answer's [n] markers refer to it.")
    document_id: str
    filename: str
    page: int | None
    chunk_index: int | None = Field(
        default=None,
        description="The chunk's place in its document: GET /v1/documents/{id}/chunks?offset= reads its neighbours.",
    )
    text: str
    score: float = Field(description="Retrieval: the chunk's cosine similarity to the question.")
    quote: QuoteOut | None = None
    cited: bool = Field(default=False, description="The answer carries this source's [n] marker.")
    support: float | None = Field(
        default=None, description="How well the source supports the answer, 0-1; citations come best first."
    )

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        quote = citation.quote
        offset = citation.chunk_start or 0  # the quote's offsets are in its chunk; the API's in the document
        return cls(
            n=citation.n,
            document_id=citation.document_id,
            filename=citation.filename,
            page=citation.page,
            chunk_index=citation.chunk_index,
            text=citation.text,
            score=round(citation.score, 4),
            quote=None
            if quote is None
            else QuoteOut(text=quote.text, start=offset + quote.start, end=offset + quote.end, score=quote.score),
            cited=citation.cited,
            support=citation.support,
        )


class GroundedSentenceOut(BaseModel):
    text: str = Field(description="One sentence of the answer.")
    start: int
    end: int
    citations: list[int] = Field(description="Numbers of the sources that support it, best first.")
    support: float = Field(description="The best source's agreement with the sentence, 0-1.")
    supported: bool = Field(description="False: no source supports this sentence; check it.")

    @classmethod
    def of(cls, sentence: GroundedSentence) -> GroundedSentenceOut:
        return cls(
            text=sentence.text,
            start=sentence.start,
            end=sentence.end,
            citations=sentence.citations,
            support=sentence.support,
            supported=sentence.supported,
        )


def citations_json(citations: Sequence[Citation]) -> list[dict[str, Any]]:
    """The citations as every response and stream sends them: through CitationOut, the one shape /docs shows."""
    return [CitationOut.of(c).model_dump(mode="json") for c in citations]


def grounding_json(sentences: Sequence[GroundedSentence]) -> list[dict[str, Any]]:
    return [GroundedSentenceOut.of(g).model_dump(mode="json") for g in sentences]


def answer_tokens(requested: int | None, settings_max: int, field: str = "max_tokens") -> int | None:
    """A request's max_tokens, within RAG_MAX_ANSWER_TOKENS (the cost of one answer is the operator's call)."""
    if requested is not None and requested > settings_max:
        raise invalid(
            f"at most {settings_max} tokens may be asked for (RAG_MAX_ANSWER_TOKENS)",
            ("body", field),
            "less_than_equal",
        )
    return requested


class QueryResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    model: str
    usage: dict[str, int]
    abstained: bool
    finish_reason: str | None
    timings: dict[str, float]
    abstain_reason: str | None = Field(default=None, description="Why the answer is 'not found' (when it is).")
    closest: list[CitationOut] = Field(
        default_factory=list, description="When abstaining: the closest passages, with their scores."
    )
    grounding: list[GroundedSentenceOut] = Field(
        default_factory=list, description="Each sentence of the answer, with the sources that support it."
    )
    retrieval_query: str = Field(
        default="", description="What was searched: the question, joined with earlier turns for a follow-up."
    )
    context: Literal["chunks", "documents"] = Field(
        default="chunks", description="What the model read: the retrieved chunks, or the documents in scope whole."
    )
