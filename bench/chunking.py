"""Pick chunk size and overlap by measurement: recall@5 and MRR@10 on an evaluation set, per configuration.

    python bench/chunking.py [DOCS_FOLDER] [QUESTIONS.jsonl] [--config 200/32 ...]

Defaults to data/eval (fetch it with `make eval-data`). Each configuration re-ingests the folder through the
normal pipeline and runs every question in every retrieval mode. Writes bench/results/chunking.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.evaluation.retrieval_eval import evaluate
from rag.runtime import load_embedder
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CONFIGS = ["96/16", "128/24", "200/32", "254/48"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("docs", type=Path, nargs="?", default=REPO / "data/eval/docs")
    parser.add_argument("questions", type=Path, nargs="?", default=REPO / "data/eval/questions.jsonl")
    parser.add_argument("--config", action="append", help="CHUNK_TOKENS/OVERLAP_TOKENS (repeatable)")
    args = parser.parse_args()
    base = Settings(_env_file=None)
    embedder = load_embedder(base.embedding, base.storage.models_dir)
    rows = []
    for config in args.config or CONFIGS:
        size, overlap = (int(part) for part in config.split("/"))
        settings = base.replace(chunk_tokens=size, chunk_overlap_tokens=overlap)
        report = evaluate(args.docs, args.questions, settings=settings, embedder=embedder, baseline=False)
        for mode, figures in report["modes"].items():
            rows.append(
                {
                    "chunk_tokens": size,
                    "overlap_tokens": overlap,
                    "mode": mode,
                    "chunks": report["ingestion"]["chunks"],
                    "recall@1": figures["recall@1"],
                    "recall@5": figures["recall@5"],
                    "mrr@10": figures["mrr@10"],
                    "page_hit@5": figures["page_hit@5"],
                    "ingest_seconds": report["ingestion"]["seconds"],
                }
            )
            print(
                f"{size:>4}/{overlap:<3} {mode:<7} chunks {report['ingestion']['chunks']:>5}  "
                f"recall@1 {figures['recall@1']:.3f}  recall@5 {figures['recall@5']:.3f}  "
                f"MRR@10 {figures['mrr@10']:.3f}  page-hit@5 {figures['page_hit@5']}",
                flush=True,
            )
    best = max((r for r in rows if r["mode"] == "hybrid"), key=lambda r: (r["recall@5"], r["mrr@10"]))
    print(f"best for hybrid by recall@5 (then MRR): {best['chunk_tokens']}/{best['overlap_tokens']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chunking.json").write_text(json.dumps({"rows": rows, "best_hybrid": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
