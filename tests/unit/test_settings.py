"""The grouped settings: every environment name the service read before the grouping is still read, into its
group; flat names work in code too; the generated reference (docs/configuration.md, .env.example) is current;
and components receive their own group, never the whole Settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from rag.settings import LLMConfig, Settings, flat_fields
from rag.settings.reference import ENV_FILE, expected_files

REPO = Path(__file__).resolve().parents[2]

# Every variable the flat Settings of the previous release read (86), as a user's .env or compose file spells it.
NAMES_BEFORE_THE_GROUPING = {
    "RAG_ABSTAIN_BELOW_SCORE", "RAG_ABSTAIN_UNKNOWN_WORDS_BELOW_SCORE", "RAG_API_DOCS", "RAG_API_KEYS",
    "RAG_API_KEYS_FILE", "RAG_CHROMA_HNSW_EF_SEARCH", "RAG_CHROMA_URL", "RAG_CHUNK_CONTEXT_TOKENS",
    "RAG_CHUNK_OVERLAP_TOKENS", "RAG_CHUNK_TOKENS", "RAG_DATABASE_URL", "RAG_DATA_DIR",
    "RAG_DOCUMENT_VECTOR_MAX_CHUNKS", "RAG_EMBEDDING_BACKEND", "RAG_EMBEDDING_BATCH_SIZE", "RAG_EMBEDDING_DEVICE",
    "RAG_EMBEDDING_MODEL", "RAG_EMBEDDING_PRECISION", "RAG_EMBEDDING_THREADS", "RAG_FILES_DIR",
    "RAG_FOLLOWUP_QUERY", "RAG_GROUNDING_METHOD", "RAG_GROUNDING_THRESHOLD", "RAG_HOST",
    "RAG_INGEST_ACTIVE_DOCUMENTS", "RAG_INGEST_QUEUE_MAX", "RAG_JOB_LEASE_SECONDS", "RAG_LLM_API_KEY",
    "RAG_LLM_BASE_URL", "RAG_LLM_CONNECT_TIMEOUT_S", "RAG_LLM_FREQUENCY_PENALTY", "RAG_LLM_MODEL",
    "RAG_LLM_REPETITION_PENALTY", "RAG_LLM_STOP", "RAG_LLM_SYSTEM_ROLE", "RAG_LLM_TIMEOUT_S",
    "RAG_LOCAL_LLM_KV_CACHE_GIB", "RAG_LOCAL_LLM_MAX_MODEL_LEN", "RAG_LOCAL_LLM_PORT",
    "RAG_LOCAL_LLM_START_TIMEOUT_S", "RAG_LOG_FORMAT", "RAG_LOG_LEVEL", "RAG_MAX_ANSWER_TOKENS",
    "RAG_MAX_DOCUMENT_CHARS", "RAG_MAX_DOCUMENT_CHUNKS", "RAG_MAX_DOCX_MB", "RAG_MAX_DOCX_MEMBERS",
    "RAG_MAX_FILTER_DOCUMENTS", "RAG_MAX_IMAGE_PIXELS", "RAG_MAX_MARKUP_DEPTH", "RAG_MAX_MARKUP_MB",
    "RAG_MAX_METADATA_BYTES", "RAG_MAX_METADATA_KEYS", "RAG_MAX_PAGE_CHARS", "RAG_MAX_PDF_PAGES",
    "RAG_MAX_PDF_PAGE_CONTENT_MB", "RAG_MAX_REQUEST_MB", "RAG_MAX_TOKENS", "RAG_MAX_UPLOAD_MB", "RAG_MODELS_DIR",
    "RAG_OCR", "RAG_OCR_DPI", "RAG_OCR_LANGUAGES", "RAG_OCR_MAX_PAGES", "RAG_OCR_PAGE_SECONDS",
    "RAG_OCR_TESSERACT_CMD", "RAG_PAGE_CACHE_MB", "RAG_PAGE_IMAGE_MAX_WIDTH", "RAG_PAGE_IMAGE_WIDTH",
    "RAG_PARSE_PROCESSES", "RAG_PARSE_TIMEOUT_S", "RAG_PORT", "RAG_QUOTE_CONTEXT_SENTENCES", "RAG_QUOTE_METHOD",
    "RAG_RETRIEVAL_CANDIDATES", "RAG_RETRIEVAL_MODE", "RAG_RETRIEVAL_SCORE_MARGIN", "RAG_RRF_DENSE_WEIGHT",
    "RAG_RRF_DOCUMENT_WEIGHT", "RAG_RRF_K", "RAG_TEMPERATURE", "RAG_TOP_K", "RAG_WEB_PAGE",
    "RAG_WHOLE_DOCUMENTS", "RAG_WHOLE_DOCUMENTS_MAX_DOCUMENTS", "RAG_WRITE_BATCH_SIZE",
}  # fmt: skip


@pytest.fixture
def clean_environment(monkeypatch):
    for name in NAMES_BEFORE_THE_GROUPING:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# Settings added since the grouping (issue 28: the audit trail; issue 29: adaptive fusion, whole-text document
# vectors, headings in the keyword index).
NAMES_ADDED_SINCE = {
    "RAG_AUDIT_LOG",
    "RAG_ADAPTIVE_KEYWORD_WEIGHT",
    "RAG_ADAPTIVE_IDENTIFIER_KEYWORD_WEIGHT",
    "RAG_ADAPTIVE_DOCUMENT_WEIGHT",
    "RAG_WHOLE_DOCUMENT_VECTORS",
    "RAG_KEYWORD_HEADING_WEIGHT",
}


def test_every_environment_name_is_kept():
    assert {f"RAG_{flat.upper()}" for flat in flat_fields()} == NAMES_BEFORE_THE_GROUPING | NAMES_ADDED_SINCE


def test_the_environment_fills_the_groups(clean_environment):
    env = clean_environment
    env.setenv("RAG_LLM_BASE_URL", "http://vllm:8000/v1")
    env.setenv("RAG_LLM_STOP", '["###", "</s>"]')  # a list, as JSON
    env.setenv("RAG_OCR", "off")  # a flat name that is also a group's name
    env.setenv("RAG_CHUNK_TOKENS", "200")
    env.setenv("RAG_FILES_DIR", "")  # compose's ${VAR:-}: unset
    env.setenv("RAG_PARSE_PROCESSES", "")
    env.setenv("RAG_API_KEYS", "k1,k2")
    settings = Settings(_env_file=None)
    assert settings.llm.base_url == "http://vllm:8000/v1"
    assert settings.llm.stop == ["###", "</s>"]
    assert settings.ocr.mode == "off"
    assert settings.chunking.tokens == 200 and settings.chunking.stride == 200 - 48
    assert settings.storage.files_dir is None and settings.storage.originals_dir == Path("data/state/files")
    assert settings.ingestion.parse_processes is None
    assert settings.access.api_keys.get_secret_value() == "k1,k2"


def test_a_bad_value_is_named_as_the_environment_names_it(clean_environment):
    clean_environment.setenv("RAG_CHUNK_TOKENS", "many")
    with pytest.raises(ValidationError, match="chunk_tokens"):
        Settings(_env_file=None)


def test_the_env_file_is_read_and_the_example_gives_the_defaults(tmp_path, clean_environment):
    env_file = tmp_path / ".env"
    env_file.write_text("RAG_TOP_K=9\nRAG_LLM_MODEL=phi\nOTHER=ignored\n")
    settings = Settings(_env_file=env_file)
    assert settings.answering.top_k == 9 and settings.llm.model == "phi"
    # "Copy to .env and adjust": the copy as it is must start the service on the defaults.
    assert Settings(_env_file=ENV_FILE) == Settings(_env_file=None)


def test_flat_names_in_code_and_replace(clean_environment):
    settings = Settings(_env_file=None, llm_base_url="http://a/v1", top_k=7, ocr="force")
    assert (settings.llm.base_url, settings.answering.top_k, settings.ocr.mode) == ("http://a/v1", 7, "force")
    changed = settings.replace(chunk_tokens=128, chunk_overlap_tokens=16)
    assert (changed.chunking.tokens, changed.chunking.overlap_tokens) == (128, 16)
    assert changed.llm == settings.llm and settings.chunking.tokens == 254  # the original is untouched
    with pytest.raises(ValidationError, match="RAG_CHUNK_OVERLAP_TOKENS must be smaller"):
        settings.replace(chunk_tokens=40)
    with pytest.raises(ValueError, match="no such setting: chunk_size"):
        settings.replace(chunk_size=40)


def test_a_group_given_whole_wins_over_flat_names(clean_environment):
    settings = Settings(_env_file=None, llm_model="flat", llm=LLMConfig(model="whole"))
    assert settings.llm.model == "whole"
    partial = Settings(_env_file=None, llm_model="flat", llm={"base_url": "http://b/v1"})
    assert (partial.llm.model, partial.llm.base_url) == ("flat", "http://b/v1")


def test_the_groups_are_frozen(clean_environment):
    settings = Settings(_env_file=None)
    with pytest.raises(ValidationError):
        settings.llm.model = "other"
    with pytest.raises(ValidationError):
        settings.llm = LLMConfig()
    assert isinstance(settings.llm.api_key, SecretStr) and "EMPTY" not in repr(settings)


def test_the_cross_field_rules_hold(clean_environment):
    with pytest.raises(ValidationError, match="RAG_MAX_TOKENS must not exceed RAG_MAX_ANSWER_TOKENS"):
        Settings(_env_file=None, max_tokens=5000)
    with pytest.raises(ValidationError, match="RAG_PAGE_IMAGE_WIDTH must not exceed"):
        Settings(_env_file=None, page_image_width=3000)


def test_the_generated_reference_is_current():
    stale = [str(path.relative_to(REPO)) for path, text in expected_files().items() if path.read_text() != text]
    assert not stale, f"out of date: {stale}; run `make settings-docs`"


def test_components_and_services_receive_their_own_group():
    """Only the composition root, the server and the entry points see the whole Settings."""
    offenders = []
    for folder in ("rag/components", "rag/services", "ingest"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "rag.settings":
                    offenders += [f"{path.relative_to(REPO)}" for a in node.names if a.name == "Settings"]
    assert offenders == []
