"""A collection never mixes vectors of two embedding models; `rag reindex` moves it to the configured one."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from ingest.storage.records import Status
from rag.components.chroma_store import EmbeddingModelMismatch
from rag.runtime import Runtime
from tests import documents as docs
from tests.helpers import venv_script, wait_until


def ingest(runtime: Runtime, name: str, content: bytes) -> str:
    document_id = runtime.ingest.submit(io.BytesIO(content), name, "default", {}).record.id
    wait_until(lambda: runtime.records.get(document_id).status is Status.READY, 60, name)
    return document_id


def test_another_model_is_refused_until_the_collection_is_reindexed(make_settings, embedder):
    settings = make_settings()
    first = Runtime(settings, embedder=embedder)
    first.start(wait=True)
    almanac = ingest(first, "almanac.pdf", docs.ALMANAC_PDF)
    first.stop()

    # The same files, the service now configured with another model (by name: the test reuses one model).
    other = settings.replace(embedding_model="another-name-for-the-same-model")
    second = Runtime(other, embedder=embedder)
    second.start(wait=True)
    try:
        with pytest.raises(EmbeddingModelMismatch, match="run `rag reindex default`"):
            second.retriever().search("default", "When was the lighthouse first lit?")
        orchard = second.ingest.submit(io.BytesIO(docs.ORCHARD_PDF), "orchard.pdf", "default", {}).record.id
        wait_until(lambda: second.records.get(orchard).status is Status.FAILED, 60, "the upload to fail")
        assert "rag reindex default" in second.records.get(orchard).error

        assert sorted(second.ingest.reindex("default")) == sorted([almanac, orchard])
        wait_until(
            lambda: all(second.records.get(i).status is Status.READY for i in (almanac, orchard)), 120, "re-indexing"
        )
        hits = second.retriever().search("default", "When was the lighthouse first lit?", k=3)
        assert hits[0].metadata["document_id"] == almanac and "14 March 1887" in hits[0].text
        assert second.store.count_document_chunks("default", almanac) == second.records.get(almanac).chunks
    finally:
        second.stop()


@pytest.mark.slow
def test_rag_reindex_from_the_shell(make_settings, embedder, tmp_path):
    settings = make_settings()
    runtime = Runtime(settings, embedder=embedder)
    runtime.start(wait=True)
    document = ingest(runtime, "weather.txt", docs.TEXT)
    runtime.stop()
    minilm = "sentence-transformers/all-MiniLM-L6-v2"  # a real second model, with vectors of another size
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(settings.storage.data_dir),
        "RAG_MODELS_DIR": str(settings.storage.models_dir.resolve()),
        "RAG_EMBEDDING_MODEL": minilm,
        "RAG_LLM_BASE_URL": settings.llm.base_url,
    }
    env.pop("RAG_CHROMA_URL", None)
    result = subprocess.run(
        [venv_script("rag"), "reindex", "--all"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert f"re-indexing 1 documents in default with {minilm}" in result.stderr
    moved = Runtime(settings.replace(embedding_model=minilm))  # loads MiniLM itself
    moved.start(wait=True)
    try:
        assert (
            moved.retriever().search("default", "coldest night at the weather station")[0].metadata["document_id"]
            == document
        )
    finally:
        moved.stop()
