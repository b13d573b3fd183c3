"""The service's one settings object: a frozen config per component, grouped under ``Settings``.

Built once at start-up (``Settings()``) from the environment (prefix ``RAG_``) and an optional ``.env`` file, then
handed out: the composition root (rag/runtime.py) gives each component its own group (``settings.llm`` to the LLM
client, ``settings.retrieval`` to the retriever). Nothing reads the environment at import time.

The environment stays flat: each field is read from the name it always had (``RAG_LLM_BASE_URL`` for
``settings.llm.base_url``; rag/settings/groups.py), and ``Settings(llm_base_url=...)`` and
``settings.replace(chunk_tokens=...)`` take the same flat names.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, Field, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ingest.parsing.limits import IngestLimits
from rag.settings.groups import (
    MIB,
    PACKAGED_EMBEDDING_MODEL,
    AccessConfig,
    AnsweringConfig,
    ChunkingConfig,
    EmbeddingConfig,
    EvidenceConfig,
    IngestionConfig,
    LimitsConfig,
    LLMConfig,
    LocalLLMConfig,
    OcrConfig,
    RetrievalConfig,
    ServerConfig,
    StorageConfig,
)

__all__ = [
    "PACKAGED_EMBEDDING_MODEL",
    "AccessConfig",
    "AnsweringConfig",
    "ChunkingConfig",
    "EmbeddingConfig",
    "EvidenceConfig",
    "IngestionConfig",
    "LLMConfig",
    "LimitsConfig",
    "LocalLLMConfig",
    "OcrConfig",
    "RetrievalConfig",
    "ServerConfig",
    "Settings",
    "StorageConfig",
    "flat_fields",
    "flat_names",
]

ENV_PREFIX = "RAG_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    storage: StorageConfig = Field(default_factory=StorageConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    ingestion: IngestionConfig = Field(default_factory=IngestionConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    local_llm: LocalLLMConfig = Field(default_factory=LocalLLMConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    answering: AnsweringConfig = Field(default_factory=AnsweringConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # pydantic-settings reads the environment field by field, so it is pointed at a flat model with every
        # group's fields under their environment names (it decodes JSON for lists, and the .env file is the one
        # Settings(_env_file=...) asked for); _nest below puts what it finds into the groups.
        flat = _flat_environment()
        dotenv = DotEnvSettingsSource(
            flat,
            env_file=getattr(dotenv_settings, "env_file", ".env"),
            env_file_encoding=getattr(dotenv_settings, "env_file_encoding", None),
        )
        return init_settings, EnvSettingsSource(flat), dotenv

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        """Flat names (``llm_base_url``) into their groups; a group given whole wins over flat names for it."""
        if not isinstance(data, dict):
            return data
        nested: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        fields = flat_fields()
        for key, value in data.items():
            # RAG_OCR is both a flat name (ocr.mode) and a group's: a mapping or a config is the group.
            if key in cls.model_fields and (key not in fields or isinstance(value, dict | BaseModel)):
                continue
            if key in fields:
                # Under the flat name (the field's alias), so that an error names what the environment calls it.
                nested.setdefault(fields[key][0], {})[key] = value
            else:
                rest[key] = value  # unknown: ignored, as the environment's other variables are
        for group in cls.model_fields:
            given = data.get(group)
            if isinstance(given, BaseModel):
                given = dict(given)
            if isinstance(given, dict):
                names = flat_names()
                nested[group] = {**nested.get(group, {}), **{names.get((group, k), k): v for k, v in given.items()}}
        return {**rest, **nested}

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed, by their flat names (``chunk_tokens=128``). Each changed group is
        validated again (its rules span no other group); the environment is not read again."""
        fields = flat_fields()
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"no such setting: {', '.join(sorted(unknown))}")
        by_group: dict[str, dict[str, Any]] = {}
        for flat, value in changes.items():
            by_group.setdefault(fields[flat][0], {})[flat] = value
        updates = {
            group: type(config).model_validate({**config.model_dump(by_alias=True), **values})
            for group, values in by_group.items()
            for config in [getattr(self, group)]
        }
        return self.model_copy(update=updates)

    def flat_values(self) -> dict[str, Any]:
        """Every value under its flat name (the environment's, without ``RAG_``)."""
        return {flat: getattr(getattr(self, group), name) for flat, (group, name) in flat_fields().items()}

    @property
    def ingest_limits(self) -> IngestLimits:
        """What ingestion enforces, from the limits, the queue and OCR groups."""
        limits = self.limits
        return IngestLimits(
            max_upload_bytes=limits.max_upload_bytes,
            queue_max=self.ingestion.queue_max,
            max_metadata_keys=limits.max_metadata_keys,
            max_metadata_bytes=limits.max_metadata_bytes,
            max_page_chars=limits.max_page_chars,
            max_document_chars=limits.max_document_chars,
            max_document_chunks=limits.max_document_chunks,
            parse_timeout_s=self.ingestion.parse_timeout_s,
            max_pdf_pages=limits.max_pdf_pages,
            max_pdf_page_content_bytes=int(limits.max_pdf_page_content_mb * MIB),
            max_docx_bytes=limits.max_docx_mb * MIB,
            max_docx_members=limits.max_docx_members,
            max_markup_bytes=limits.max_markup_mb * MIB,
            max_markup_depth=limits.max_markup_depth,
            ocr=self.ocr.options(max_pixels=limits.max_image_pixels),
        )


@cache
def flat_fields() -> dict[str, tuple[str, str]]:
    """Each setting's flat name (its environment name without ``RAG_``, lower case) -> (group, field)."""
    found: dict[str, tuple[str, str]] = {}
    for group, info in Settings.model_fields.items():
        for name, field in info.annotation.model_fields.items():
            flat = field.alias or name
            assert flat not in found, f"two settings read RAG_{flat.upper()}"
            found[flat] = (group, name)
    return found


@cache
def flat_names() -> dict[tuple[str, str], str]:
    """The inverse of flat_fields: (group, field) -> its flat name."""
    return {place: flat for flat, place in flat_fields().items()}


@cache
def _flat_environment() -> type[BaseSettings]:
    """A model with one field per environment name, for pydantic-settings' sources to read (never instantiated)."""
    fields = {}
    for flat, (group, name) in flat_fields().items():
        fields[flat] = (Settings.model_fields[group].annotation.model_fields[name].annotation, None)
    return create_model("Settings", __base__=_FlatEnvironmentBase, **fields)


class _FlatEnvironmentBase(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")
