"""PostgreSQL's full text search (tsvector, ts_rank_cd) against SQLite FTS5's BM25, on the eval sets.

    python bench/keyword_engines.py [--set data/eval/faq] [--database-url postgresql://...]

The set is ingested once, with the keyword index written to both engines in the same calls (so both index
exactly the same chunks); then every question of each split is retrieved in `bm25` mode (keywords alone)
and in `hybrid` mode (the default: dense and keywords fused) with each engine. Without --database-url a
throwaway PostgreSQL cluster is started from Debian's package (tests/postgres.py). Printed per split and
mode: recall@1/5/10 and MRR@10 of each engine, FTS5 (the embedded default) first as the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.postgres, for the throwaway cluster

from ingest.storage.db import open_database  # noqa: E402
from ingest.storage.records import DocumentRecords  # noqa: E402
from rag.components.keyword_postgres import PostgresKeywordIndex  # noqa: E402
from rag.components.keyword_sqlite import KeywordIndex  # noqa: E402
from rag.evaluation.retrieval_eval import ingest_folder, load_questions, run_questions, summarise  # noqa: E402
from rag.runtime import Runtime  # noqa: E402
from rag.services.abstention import AbstentionPolicy  # noqa: E402
from rag.settings import Settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"


class BothIndexes:
    """Writes go to both engines, so each indexes the very same chunks."""

    def __init__(self, *indexes):
        self.indexes = indexes

    def upsert(self, *args, **kwargs):
        for index in self.indexes:
            index.upsert(*args, **kwargs)

    def delete_document(self, *args, **kwargs):
        for index in self.indexes:
            index.delete_document(*args, **kwargs)

    def drop_collection(self, *args, **kwargs):
        for index in self.indexes:
            index.drop_collection(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, default=REPO / "data" / "eval" / "faq")
    parser.add_argument("--database-url")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"])
    args = parser.parse_args()

    cluster = None
    url = args.database_url
    if url is None:
        from tests.postgres import Cluster

        cluster = Cluster()
        url = cluster.new_database()
    report: dict = {"set": str(args.set), "results": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="rag-kw-") as scratch:
            settings = Settings(data_dir=Path(scratch), chroma_url=None)
            runtime = Runtime(settings)
            postgres_records = DocumentRecords(open_database(url, Path(scratch) / "unused.sqlite3"))
            engines = {
                "fts5 (default)": KeywordIndex(Path(scratch) / "fts5.sqlite3"),
                "postgresql": PostgresKeywordIndex(postgres_records.database),
            }
            runtime.chunk_store.keywords = BothIndexes(*engines.values())
            runtime.start(run_worker=False, wait=True)
            try:
                report["ingestion"] = ingest_folder(runtime, args.set / "docs", "eval")
                for split in args.splits:
                    questions = load_questions(args.set / "questions.jsonl", split)
                    for mode in ("bm25", "hybrid"):
                        for name, keywords in engines.items():
                            retriever = runtime.retriever(mode=mode, keywords=keywords)
                            results = run_questions(
                                lambda q, k, r=retriever: r.search("eval", q, k),
                                questions,
                                lambda q, kw=keywords: kw.unknown_words("eval", q),
                            )
                            figures = summarise(results, AbstentionPolicy.from_config(settings.answering))
                            report["results"][f"{split}/{mode}/{name}"] = figures
                            print(
                                f"{split:4} {mode:6} {name:15} n={figures['questions']} "
                                f"r@1 {figures['recall@1']:.3f} r@5 {figures['recall@5']:.3f} "
                                f"r@10 {figures['recall@10']:.3f} MRR@10 {figures['mrr@10']:.3f} "
                                f"p50 {figures.get('latency_ms_p50', 0):.1f} ms",
                                flush=True,
                            )
            finally:
                runtime.stop()
                postgres_records.close()
    finally:
        if cluster is not None:
            cluster.stop()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"keyword_engines_{args.set.name}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
