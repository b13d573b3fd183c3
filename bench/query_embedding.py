"""What embedding the question costs a query, alone and under concurrent load, per embedding model.

    python bench/query_embedding.py [--questions 64] [--concurrency 1,4,16]

Real questions from data/eval/faq (dev). For each model and each concurrency level, that many threads embed
questions one at a time (as concurrent /v1/query requests do, each from its own thread), first each
alone, then through the service's BatchingEmbedder (rag/components/embedding/query_batching.py); printed:
the per-question latency p50/p95 and the questions per second. On a host where vLLM has its own cores (or the
GPU), this is what retrieval adds before the first token beyond the Chroma and BM25 searches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rag.components.embedding.packaged_models import MINILM, MPNET
from rag.components.embedding.query_batching import BatchingEmbedder
from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder


def measure(embedder, questions: list[str], concurrency: int) -> tuple[list[float], float]:
    """Each question embedded alone, ``concurrency`` at a time: sorted latencies (ms) and the seconds taken."""
    latencies: list[float] = []

    def one(question: str) -> None:
        start = time.perf_counter()
        embedder.embed([question])
        latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, questions))
    return sorted(latencies), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path("data/eval/faq/questions.jsonl").read_text().splitlines() if line]
    questions = [row["question"] for row in rows if row["split"] == "dev"][: args.questions]
    levels = [int(level) for level in args.concurrency.split(",")]
    for model in (MINILM, MPNET):
        embedder = SentenceTransformerEmbedder(model, models_dir=args.models_dir)
        embedder.embed(questions[:4])  # warm-up
        batching = BatchingEmbedder(embedder)
        for level in levels:
            # Alternating: one at a time as each thread asks, then through the service's batching.
            for label, target in (("alone", embedder), ("batched", batching)):
                latencies, elapsed = measure(target, questions, level)
                p95 = latencies[int(0.95 * (len(latencies) - 1))]
                print(
                    f"{model.rsplit('/', 1)[-1]:18s} {label:8s} concurrency {level:2d}: p50"
                    f" {statistics.median(latencies):6.1f} ms  p95 {p95:6.1f} ms"
                    f"  {len(questions) / elapsed:6.1f} questions/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
