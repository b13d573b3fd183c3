"""What the service adds to a query: /v1/retrieve against a bare "embed + Chroma query" loop, at 100k chunks.

    python bench/query_overhead.py [--chunks 100000] [--queries 200]

Builds a collection of N chunks in a temporary state directory: the chunk texts of the evaluation corpus
(data/eval, or tests/data if it is missing), repeated with a serial number, and their real embeddings
with a little noise, so that every vector is distinct. The same process then times, alternating per
query: (a) the bare loop: embed the question with the same model, query the Chroma collection for 5;
(b) POST /v1/retrieve over HTTP to the real app (uvicorn, in a thread), in its default (hybrid) mode and in
dense mode. Prints p50/p99 and the ratios. Writes bench/results/query_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from ingest.chunk_ids import chunk_id
from ingest.storage.records import NewDocument
from rag.evaluation.retrieval_eval import ingest_folder, load_questions
from rag.runtime import Runtime, load_embedder
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_collection(runtime: Runtime, embedder, target: int, collection: str) -> int:
    docs = REPO / "data/eval/docs" if (REPO / "data/eval/docs").exists() else REPO / "tests/data"
    ingest_folder(runtime, docs, "seed")
    records, _ = runtime.records.list(collection="seed", limit=10_000)
    from rag.services.documents import DocumentReader

    reader = DocumentReader(runtime.records, runtime.store)
    seed = [hit.text for r in records for hit in reader.chunks(r.id, limit=r.chunks or 0, offset=0).chunks]
    vectors = embedder.embed(seed)
    rng = np.random.default_rng(7)
    per_document = 1000
    written = 0
    while written < target:
        count = min(per_document, target - written)
        document_id = runtime.records.new_id()
        [(record, _)] = runtime.records.add_many(
            [
                NewDocument(
                    document_id=document_id,
                    collection=collection,
                    filename=f"synthetic-{written // per_document:04d}.txt",
                    content_type="text/plain",
                    size=0,
                    sha256=document_id,
                    metadata={},
                )
            ],
            queue_max=1,
        )
        runtime.records.claim_next("bench")
        picks = rng.integers(0, len(seed), size=count)
        noisy = vectors[picks] + rng.normal(0, 0.02, size=(count, vectors.shape[1])).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        for begin in range(0, count, 4000):
            end = min(count, begin + 4000)
            runtime.chunk_store.upsert(
                collection,
                ids=[chunk_id(document_id, i) for i in range(begin, end)],
                embeddings=noisy[begin:end],
                texts=[
                    f"{seed[p]} (copy {written + i})" for i, p in zip(range(begin, end), picks[begin:end], strict=True)
                ],
                metadatas=[
                    {
                        "document_id": document_id,
                        "collection": collection,
                        "filename": record.filename,
                        "chunk_index": i,
                        "start": 0,
                        "end": 0,
                    }
                    for i in range(begin, end)
                ],
            )
        runtime.records.set_plan(document_id, pages=None, chunks=count)
        runtime.records.mark_ready(document_id)
        written += count
        print(f"  {written} chunks written", end="\r", flush=True)
    print()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    import uvicorn

    from rag.components.llm.local_vllm import free_port
    from rag.server.app import create_app

    questions_file = REPO / "data/eval/questions.jsonl"
    questions = [q.question for q in load_questions(questions_file)] if questions_file.exists() else ["lighthouse"]
    questions = (questions * (args.queries // len(questions) + 1))[: args.queries]
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(_env_file=None, data_dir=Path(state), llm_base_url="http://127.0.0.1:9/v1")
        embedder = load_embedder(settings.embedding, settings.storage.models_dir)
        runtime = Runtime(settings, embedder=embedder)
        runtime.start(run_worker=False, wait=True)
        started = time.perf_counter()
        total = build_collection(runtime, embedder, args.chunks, "big")
        print(f"built {total} chunks in {time.perf_counter() - started:.0f} s")
        chroma_collection = runtime.store._collection("big", create=False)
        runtime.stop()

        results = {}
        for mode in ("hybrid", "dense"):
            app_settings = settings.replace(retrieval_mode=mode)
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(create_app(app_settings, embedder=embedder), port=port, log_level="warning")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port}/v1/retrieve"
            bare, served = [], []
            with httpx.Client(timeout=30) as client:
                for warm in questions[:10]:
                    client.post(url, json={"query": warm, "collection": "big", "top_k": 5})
                    chroma_collection.query(query_embeddings=[embedder.embed([warm])[0]], n_results=5)
                for question in questions:
                    t = time.perf_counter()
                    chroma_collection.query(query_embeddings=[embedder.embed([question])[0]], n_results=5)
                    bare.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    response = client.post(url, json={"query": question, "collection": "big", "top_k": 5})
                    served.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, response.text
            server.should_exit = True
            thread.join(30)
            results[mode] = {
                "bare_p50_ms": round(statistics.median(bare), 2),
                "bare_p99_ms": round(percentile(bare, 0.99), 2),
                "retrieve_p50_ms": round(statistics.median(served), 2),
                "retrieve_p99_ms": round(percentile(served, 0.99), 2),
            }
            r = results[mode]
            r["ratio_p50"] = round(r["retrieve_p50_ms"] / r["bare_p50_ms"], 3)
            r["ratio_p99"] = round(r["retrieve_p99_ms"] / r["bare_p99_ms"], 3)
            print(
                f"{mode:<7} /v1/retrieve p50 {r['retrieve_p50_ms']:.1f} ms p99 {r['retrieve_p99_ms']:.1f} ms | "
                f"bare p50 {r['bare_p50_ms']:.1f} ms p99 {r['bare_p99_ms']:.1f} ms | "
                f"ratio p50 {r['ratio_p50']:.2f}x p99 {r['ratio_p99']:.2f}x (target <= 1.3x)"
            )
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "chunks": total,
        "queries": len(questions),
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "query_overhead.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
