"""Ingestion throughput against its compute floor.

    python bench/ingest_throughput.py FOLDER [--batch-size N]

Runs every file in FOLDER through the real pipeline (store the upload, parse, chunk, embed, write to an
embedded Chroma in a temporary directory), then embeds the very same chunk texts alone: the time no
pipeline can beat on this machine. Prints pages/s, chunks/s, both times and their ratio, and writes them
to bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

# This file is itself named ingest.py: drop its folder from the import path so `ingest` is the package.
from ingest.parsing.detect import DocType
from ingest.storage.records import Status
from rag.runtime import Runtime, load_embedder
from rag.services.documents import DocumentReader
from rag.settings import Settings

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    files = sorted(p for p in args.folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        sys.exit(f"no files in {args.folder}")

    with tempfile.TemporaryDirectory() as state:
        settings = Settings(data_dir=Path(state), chroma_url=None)
        embedder = load_embedder(settings.embedding, settings.storage.models_dir)
        embedder.embed(["warm-up"])  # first call pays one-off allocations; leave them out of both timings
        runtime = Runtime(settings, embedder=embedder)
        runtime.start(run_worker=False, wait=True)

        started = time.perf_counter()
        ids = []
        for path in files:
            with path.open("rb") as source:
                ids.append(runtime.ingest.submit(source, path.name, "bench", {}).record.id)
        runtime.worker.drain()
        pipeline_s = time.perf_counter() - started

        records = [runtime.records.get(i) for i in ids]
        failed = [r for r in records if r.status is not Status.READY]
        for record in failed:
            print(f"failed: {record.filename}: {record.error}", file=sys.stderr)
        ready = [r for r in records if r.status is Status.READY]
        reader = DocumentReader(runtime.records, runtime.store)
        texts = [hit.text for r in ready for hit in reader.chunks(r.id, limit=r.chunks, offset=0).chunks]

        started = time.perf_counter()
        embedder.embed(texts)
        floor_s = time.perf_counter() - started

        # Where the rest goes: parsing and chunking alone, for the same documents.
        pipeline = runtime.make_pipeline(embedder)
        started = time.perf_counter()
        for record in ready:
            pipeline.plan(runtime.files.path(record.id), DocType(record.content_type))
        parse_chunk_s = time.perf_counter() - started
        runtime.stop()

    pages = sum(r.pages or 0 for r in ready)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "files": len(files),
        "documents_ready": len(ready),
        "documents_failed": len(failed),
        "pages": pages,
        "chunks": len(texts),
        "pipeline_seconds": round(pipeline_s, 2),
        "pages_per_second": round(pages / pipeline_s, 2),
        "chunks_per_second": round(len(texts) / pipeline_s, 2),
        "embed_only_seconds": round(floor_s, 2),
        "embed_only_chunks_per_second": round(len(texts) / floor_s, 2),
        "pipeline_over_floor": round(pipeline_s / floor_s, 3),
        "parse_and_chunk_seconds": round(parse_chunk_s, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "chunk_tokens": settings.chunking.tokens,
        "chunk_overlap_tokens": settings.chunking.overlap_tokens,
    }
    print(
        f"{result['documents_ready']} documents, {pages} pages, {len(texts)} chunks\n"
        f"pipeline:   {pipeline_s:8.1f} s  {result['pages_per_second']:7.2f} pages/s  "
        f"{result['chunks_per_second']:7.2f} chunks/s\n"
        f"embed only: {floor_s:8.1f} s  {result['embed_only_chunks_per_second']:7.2f} chunks/s  (the floor)\n"
        f"parse + chunk alone: {parse_chunk_s:.1f} s\n"
        f"pipeline / floor = {result['pipeline_over_floor']:.2f}x   peak RSS {result['peak_rss_mib']} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
