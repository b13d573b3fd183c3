"""Retrieval choices measured on one ingestion per set: fusion weights, identifier tokens, heading weight, short
documents' vectors (whole text or mean of chunks), per kind of question.

    python bench/retrieval_choices.py SET [SET ...] [--split dev] [--cache DIR] [--out FILE]

SET is a folder of data/eval (faq, pdf, tech). Only the documents of the split's sources are ingested (once,
kept in --cache and reused by later runs), so a dev run never sees a test source. Then each variant below
answers the split's questions; query embeddings are computed once. What changes at ingestion is redone
without embedding chunks again: the keyword index is rebuilt from the documents' chunks (identifier tokens on
or off, the heading weight), and short documents' vectors are written again (whole text or mean).

Prints, per set and variant, recall@5 and MRR@10 overall and per kind, with `dense`, `hybrid` and the previous
default (hybrid over the previous index: no identifier tokens, no headings, mean vectors, short documents ranked
alone) in the same run, and with --baseline the plain recipe; writes JSON lines to --out.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

import rag.components.keyword_sqlite as keyword_sqlite
import rag.services.retrieval as retrieval
import rag.words as words
from ingest.chunk_ids import chunk_id
from ingest.parsing.detect import detect_type
from ingest.pipeline import mean_direction
from ingest.storage.records import Status
from rag.evaluation.retrieval_eval import EvalQuestion, ingest_folder, load_questions, run_questions, summarise
from rag.runtime import Runtime
from rag.services.abstention import AbstentionPolicy
from rag.services.retrieval import FusionWeights, Retriever
from rag.settings import Settings

EVAL = Path(__file__).resolve().parents[1] / "data" / "eval"
COLLECTION = "choices"
# Query-time variants: (name, mode, fusion weights).
FUSIONS = [
    ("dense", "dense", FusionWeights()),
    ("hybrid (previous default)", "hybrid", FusionWeights()),
    *(
        (f"adaptive kw {plain}/{ident} doc {doc}", "adaptive", FusionWeights(1.0, plain, ident, doc))
        for plain in (0.5, 1.0, 1.5)
        for ident in (1.0, 2.0)
        for doc in (0.0, 0.5, 1.0)
        if plain <= ident
    ),
]


class CachedEmbedder:
    """The runtime's query embedder, each query embedded once across variants."""

    def __init__(self, embedder):
        self._embedder = embedder
        self._cache: dict[str, np.ndarray] = {}
        self.max_tokens = embedder.max_tokens

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def embed(self, texts):
        missing = [text for text in texts if text not in self._cache]
        if missing:
            self._cache.update(zip(missing, self._embedder.embed(missing), strict=True))
        return np.stack([self._cache[text] for text in texts])


def split_files(root: Path, questions: list[EvalQuestion]) -> list[Path]:
    """The split's documents: those its questions name, and the rest of their sources (a source's prefix)."""
    raw = [json.loads(line) for line in (root / "questions.jsonl").read_text().splitlines() if line.strip()]
    named = {q.doc for q in questions if q.doc}
    ids = {q.id for q in questions}
    sources = {line["source"] for line in raw if line.get("source") and line["id"] in ids}
    files = sorted(p for p in (root / "docs").iterdir() if p.is_file())
    return [p for p in files if p.name in named or any(p.name.startswith(f"{source}-") for source in sources)]


def ingested(runtime: Runtime, root: Path, files: list[Path], cache: Path) -> None:
    records, _ = runtime.records.list(collection=COLLECTION, limit=100_000)
    if {r.filename for r in records if r.status is Status.READY} >= {p.name for p in files}:
        return
    folder = cache / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path)
    print(f"  ingesting {len(files)} files: {ingest_folder(runtime, folder, COLLECTION)}", flush=True)


def planned(runtime: Runtime, root: Path) -> dict[str, tuple[str, list]]:
    """Each ready document's storage key and chunks, planned again from its file (no embedding)."""
    records, _ = runtime.records.list(collection=COLLECTION, limit=100_000)
    pipeline = runtime.make_pipeline(runtime.embedder)
    plans = {}
    for record in records:
        if record.status is Status.READY:
            path = root / "docs" / record.filename
            plans[record.filename] = (record.key, pipeline.plan(path, detect_type(path, path.name), path.name).chunks)
    return plans


def rebuild_keywords(runtime: Runtime, plans, heading_weight: int) -> None:
    runtime.keywords.drop_collection(COLLECTION)
    for key, chunks in plans.values():
        runtime.keywords.upsert(
            COLLECTION,
            [chunk_id(key, chunk.index) for chunk in chunks],
            [chunk.keyword_text(heading_weight) for chunk in chunks],
            [key] * len(chunks),
        )


def document_vectors(runtime: Runtime, plans, max_chunks: int) -> dict[str, dict[str, np.ndarray]]:
    """Both vectors of every short document: "whole" (as ingestion makes it: its text's, where that fits the
    window) and "mean" (of its chunks' vectors, as stored)."""
    vectors: dict[str, dict[str, np.ndarray]] = {"whole": {}, "mean": {}}
    pipeline = runtime.make_pipeline(runtime.embedder)
    chunks_collection = runtime.store._collection(COLLECTION, create=False)
    for key, chunks in plans.values():
        if not chunks or len(chunks) > max_chunks:
            continue
        ids = [chunk_id(key, chunk.index) for chunk in chunks]
        found = chunks_collection.get(ids=ids, include=["embeddings"])
        by_id = dict(zip(found["ids"], found["embeddings"], strict=True))
        embeddings = np.asarray([by_id[i] for i in ids], dtype=np.float32)
        vectors["mean"][key] = mean_direction(embeddings)
        vectors["whole"][key] = pipeline.document_vector(chunks, embeddings)
    return vectors


def figures(runtime, embedder, questions, mode, weights, policy) -> dict:
    retriever = Retriever(
        runtime.records, runtime.store, embedder, runtime.keywords, mode=mode, weights=weights, candidates=30
    )
    return kind_figures(run_questions(lambda q, k: retriever.search(COLLECTION, q, k), questions), questions, policy)


def kind_figures(results, questions, policy) -> dict:
    row = {"all": summarise(results, policy)}
    by_kind = defaultdict(list)
    for question, result in zip(questions, results, strict=True):
        if question.answerable:
            by_kind[question.kind or "unlabelled"].append(result)
    for kind, kind_results in sorted(by_kind.items()):
        row[kind] = summarise(kind_results, policy)
    return row


def line(name: str, row: dict) -> str:
    cells = [f"{name:<34}"]
    for kind, f in row.items():
        page = "" if f["page_hit@5"] is None else f" p{f['page_hit@5']:.3f}"
        cells.append(f"{kind[:5]}({f['answerable']}) r5 {f['recall@5']:.3f} mrr {f['mrr@10']:.3f}{page}")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--cache", type=Path, default=EVAL / "results" / "choices")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="only dense, hybrid and the shipped adaptive")
    parser.add_argument("--baseline", action="store_true", help="also the plain recipe, on the same documents")
    args = parser.parse_args()
    out = args.out.open("a") if args.out else None
    settings = Settings(_env_file=None)
    policy = AbstentionPolicy.from_config(settings.answering)
    for name in args.sets:
        root = EVAL / name
        questions = load_questions(root / "questions.jsonl", args.split)
        cache = args.cache / f"{name}-{args.split}"
        runtime = Runtime(settings.replace(data_dir=cache, chroma_url=None))
        runtime.start(run_worker=False, wait=True)
        try:
            ingested(runtime, root, split_files(root, questions), cache)
            embedder = CachedEmbedder(runtime.embedder)
            plans = planned(runtime, root)
            vectors = document_vectors(runtime, plans, settings.retrieval.document_vector_max_chunks)
            shipped = settings.retrieval
            shipped_fusion = ("adaptive (shipped)", "adaptive", runtime.retriever()._weights)
            fusions = [*FUSIONS[:2], shipped_fusion] + ([] if args.quick else FUSIONS[2:])
            index_variants = [
                ("ids+heads", True, shipped.keyword_heading_weight, "whole"),
                ("previous (no ids, no heads, mean)", False, 0, "mean"),
                ("no ids", False, shipped.keyword_heading_weight, "whole"),
                *(("heads", True, weight, "whole") for weight in (0, 1, 3) if weight != shipped.keyword_heading_weight),
                ("mean vectors", True, shipped.keyword_heading_weight, "mean"),
            ]
            print(f"== {name} {args.split}: {len(questions)} questions, {len(plans)} documents", flush=True)
            if args.baseline:
                from rag.evaluation.plain_recipe import PlainRecipe

                plain = PlainRecipe(cache / "docs")
                try:
                    print(line("plain recipe", kind_figures(run_questions(plain.search, questions), questions, policy)))
                finally:
                    plain.close()
            for variant, with_identifiers, heading_weight, vector_kind in index_variants:
                keyword_sqlite.keyword_text = words.keyword_text if with_identifiers else (lambda text: text)
                keyword_sqlite.search_words = words.search_words if with_identifiers else words.query_words
                rebuild_keywords(runtime, plans, heading_weight)
                chunk_counts = {key: len(chunks) for key, chunks in plans.values()}
                for key, vector in vectors[vector_kind].items():
                    runtime.store.upsert_document_vector(COLLECTION, key, vector, chunk_counts[key])
                print(
                    f"-- index: {variant} (identifiers {with_identifiers}, heading weight {heading_weight}, "
                    f"document vectors {vector_kind})",
                    flush=True,
                )
                if variant == "ids+heads":
                    chosen = fusions
                elif variant.startswith("previous"):
                    chosen = FUSIONS[:2]
                    retrieval.EVERY_DOCUMENT_RANKED = False  # as before: short documents ranked alone
                else:
                    chosen = [FUSIONS[1], shipped_fusion]
                for label, mode, weights in chosen:
                    row = figures(runtime, embedder, questions, mode, weights, policy)
                    print(line(label, row), flush=True)
                    if out:
                        out.write(
                            json.dumps(
                                {
                                    "set": name,
                                    "split": args.split,
                                    "index": variant,
                                    "fusion": label,
                                    **{
                                        k: {m: v[m] for m in ("answerable", "recall@5", "mrr@10", "page_hit@5")}
                                        for k, v in row.items()
                                    },
                                }
                            )
                            + "\n"
                        )
                        out.flush()
                retrieval.EVERY_DOCUMENT_RANKED = True
        finally:
            keyword_sqlite.keyword_text, keyword_sqlite.search_words = words.keyword_text, words.search_words
            runtime.stop()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
