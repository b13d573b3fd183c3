"""Retrieval settings that need no re-ingestion, measured on one ingested set: fusion, depth, score margin.

    python bench/retrieval_sweep.py SET [--split dev] [--out FILE]

SET is a folder of data/eval (faq, pdf) or "smoke" (data/eval itself). The set is ingested once with the
default settings; then every combination of RAG_RETRIEVAL_CANDIDATES, RAG_RRF_K, RAG_RRF_DENSE_WEIGHT and
RAG_RETRIEVAL_SCORE_MARGIN in the grid below answers the same questions. Prints one line per setting,
the current default marked, best first by MRR@10; writes JSON lines to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from rag.evaluation.retrieval_eval import ingest_folder, load_questions, run_questions, summarise
from rag.runtime import Runtime
from rag.services.abstention import AbstentionPolicy
from rag.services.retrieval import Retriever
from rag.settings import Settings

EVAL = Path(__file__).resolve().parents[1] / "data" / "eval"
GRID = {
    "retrieval_candidates": [30],
    "rrf_k": [20, 60],
    "rrf_dense_weight": [1.0, 1.5, 2.0],
    "retrieval_score_margin": [0.2, 0.3],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    root = EVAL if args.set == "smoke" else EVAL / args.set
    questions = load_questions(root / "questions.jsonl", args.split)
    defaults = Settings(_env_file=None)
    rows = []
    with tempfile.TemporaryDirectory() as state:
        runtime = Runtime(defaults.replace(data_dir=Path(state), chroma_url=None))
        runtime.start(run_worker=False, wait=True)
        try:
            ingest_folder(runtime, root / "docs", "sweep")
            for values in itertools.product(*GRID.values()):
                setting = dict(zip(GRID, values, strict=True))
                retriever = Retriever(
                    runtime.records,
                    runtime.store,
                    runtime.embedder,
                    runtime.keywords,
                    mode="hybrid",
                    candidates=setting["retrieval_candidates"],
                    rrf_k=setting["rrf_k"],
                    dense_weight=setting["rrf_dense_weight"],
                    score_margin=setting["retrieval_score_margin"],
                )
                figures = summarise(
                    run_questions(lambda q, k, r=retriever: r.search("sweep", q, k), questions),
                    AbstentionPolicy.from_config(defaults.answering),
                )
                is_default = all(defaults.flat_values()[name] == value for name, value in setting.items())
                rows.append({**setting, "default": is_default, **figures})
        finally:
            runtime.stop()
    rows.sort(key=lambda row: (-row["mrr@10"], -row["recall@5"]))
    for row in rows:
        page = "n/a" if row["page_hit@5"] is None else f"{row['page_hit@5']:.3f}"
        print(
            f"{'*' if row['default'] else ' '} candidates {row['retrieval_candidates']:>2} k {row['rrf_k']:>2} "
            f"dense weight {row['rrf_dense_weight']:.1f} margin {row['retrieval_score_margin']:.1f}: "
            f"recall@1 {row['recall@1']:.3f} recall@5 {row['recall@5']:.3f} MRR@10 {row['mrr@10']:.3f} page@5 {page}"
        )
    if args.out:
        args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
