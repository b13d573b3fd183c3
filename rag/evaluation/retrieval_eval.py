"""Measure retrieval on your own documents: recall@k, MRR, page hits, abstention, latency, ingestion time.

    rag eval DOCS_FOLDER QUESTIONS.jsonl [--split dev|test] [--mode dense|bm25|hybrid|adaptive|all|A,B] [--no-baseline]

Each line of QUESTIONS.jsonl: {"question": ..., "doc": "file name" or null, "page": 12 (optional),
"answer": ... (optional), "split": "dev" | "test" (optional), "kind": "identifier" | "definition" | "paraphrase" |
"overview" (optional: figures are given per kind too)}; a null doc marks a question the documents
cannot answer. The folder is ingested into a fresh collection through the normal pipeline, and every
question goes through the same code as POST /v1/retrieve. The plain LangChain recipe (rag.evaluation.plain_recipe)
indexes the same folder and answers the same questions in the same run, as the baseline.
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import DocumentError, QueueFull
from ingest.ports import Embedder
from ingest.storage.records import Status
from rag.ports import ChunkHit
from rag.runtime import Runtime
from rag.services.abstention import AbstentionPolicy
from rag.settings import Settings

RANKS = (1, 3, 5, 10)
MODES = ("dense", "bm25", "hybrid", "adaptive")
BASELINE = "plain recipe"
# One way of searching the evaluated folder: (question, k) -> hits, best first.
Search = Callable[[str, int], list[ChunkHit]]


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    id: str
    question: str
    doc: str | None = None
    page: int | None = None
    answer: str | None = None
    split: str | None = None
    kind: str | None = None  # identifier, definition, paraphrase, overview (data/eval/README.md)

    @property
    def answerable(self) -> bool:
        return self.doc is not None


@dataclass(slots=True)
class QuestionResult:
    id: str
    answerable: bool
    doc_rank: int | None  # 1-based rank of the first chunk from the gold document, within the top 10
    page_hit_at_5: bool | None  # None when the question has no gold page
    top_score: float
    latency_ms: float
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    unknown_words: int = 0  # words of the question that no chunk of the collection holds
    kind: str | None = None  # the question's kind, from the questions file


def load_questions(path: Path, split: str | None = None) -> list[EvalQuestion]:
    """The questions of the file (of one split, when ``split`` is given)."""
    questions = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            questions.append(
                EvalQuestion(
                    id=str(raw.get("id") or f"q{number}"),
                    question=raw["question"],
                    doc=raw.get("doc"),
                    page=raw.get("page"),
                    answer=raw.get("answer"),
                    split=raw.get("split"),
                    kind=raw.get("kind"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a question line ({exc})") from exc
    if split is not None:
        questions = [q for q in questions if q.split == split]
    if not questions:
        raise ValueError(f"{path} has no questions" + (f" in split {split!r}" if split else ""))
    return questions


def ingest_folder(runtime: Runtime, folder: Path, collection: str) -> dict[str, Any]:
    """Ingest every file under ``folder`` through the normal pipeline, synchronously."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for path in files:
        try:
            with path.open("rb") as source:
                try:
                    runtime.ingest.submit(source, path.name, collection, {})
                except QueueFull:  # more files than RAG_INGEST_QUEUE_MAX: ingest those queued, then go on
                    runtime.worker.drain()
                    source.seek(0)
                    runtime.ingest.submit(source, path.name, collection, {})
        except DocumentError as exc:
            failures[path.name] = str(exc)
    runtime.worker.drain()
    records, _ = runtime.records.list(collection=collection, limit=100_000)
    failures.update({r.filename: r.error or "" for r in records if r.status is Status.FAILED})
    return {
        "files": len(files),
        "documents_ready": sum(1 for r in records if r.status is Status.READY),
        "chunks": sum(r.chunks or 0 for r in records if r.status is Status.READY),
        "pages": sum(r.pages or 0 for r in records if r.status is Status.READY),
        "failed": failures,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_questions(
    search: Search, questions: list[EvalQuestion], unknown_words: Callable[[str], list[str]] | None = None
) -> list[QuestionResult]:
    results = []
    for q in questions:
        started = time.perf_counter()
        hits = search(q.question, max(RANKS))
        latency_ms = (time.perf_counter() - started) * 1000
        rank = next((i for i, hit in enumerate(hits, start=1) if hit.metadata.get("filename") == q.doc), None)
        page_hit = None
        if q.page is not None:
            page_hit = any(
                hit.metadata.get("filename") == q.doc
                and hit.metadata.get("page", -1) <= q.page <= hit.metadata.get("page_end", hit.metadata.get("page", -1))
                for hit in hits[:5]
            )
        results.append(
            QuestionResult(
                id=q.id,
                answerable=q.answerable,
                kind=q.kind,
                doc_rank=rank if q.answerable else None,
                page_hit_at_5=page_hit,
                top_score=max((hit.score for hit in hits), default=0.0),
                latency_ms=round(latency_ms, 2),
                retrieved=[
                    {"filename": h.metadata.get("filename"), "page": h.metadata.get("page"), "score": round(h.score, 4)}
                    for h in hits[:5]
                ],
                unknown_words=len(unknown_words(q.question)) if unknown_words else 0,
            )
        )
    return results


def abstention(results: list[QuestionResult], policy: AbstentionPolicy) -> dict[str, float | None]:
    """How often answerable questions are answered and unanswerable ones abstained under ``policy``."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]

    def abstains(result: QuestionResult) -> bool:
        return policy.abstains(result.top_score, result.unknown_words > 0)

    answered = sum(not abstains(r) for r in answerable) / len(answerable) if answerable else None
    abstained = sum(abstains(r) for r in unanswerable) / len(unanswerable) if unanswerable else None
    return {
        "threshold": round(policy.below_score, 4),
        "unknown_words_threshold": round(policy.unknown_words_below_score, 4),
        "answered_rate": answered,
        "abstain_rate": abstained,
    }


def calibrate_threshold(results: list[QuestionResult], min_answered: float = 0.975) -> dict[str, float | None]:
    """The thresholds (the score, and the score when a word of the question is unknown) that best separate
    answerable from unanswerable questions (balanced accuracy), among those that still answer at least
    ``min_answered`` of the answerable ones: wrongly saying "not found" costs a user more than an answer the
    model itself is told to decline."""
    scores = sorted({round(r.top_score, 4) for r in results})
    if not any(not r.answerable for r in results) or not scores:
        return abstention(results, AbstentionPolicy(0.0, 0.0))
    # Candidates halfway between neighbouring scores, so a threshold never sits exactly on a question; at
    # most ~80 of them (every pair of thresholds is tried).
    candidates = [(a + b) / 2 for a, b in itertools.pairwise(scores)] or scores
    candidates = candidates[:: max(1, len(candidates) // 80)]
    best: tuple[tuple[bool, float], dict[str, float | None]] | None = None
    for low in candidates:
        for high in (c for c in candidates if c >= low):
            rates = abstention(results, AbstentionPolicy(low, high))
            answered, abstained = rates["answered_rate"] or 0.0, rates["abstain_rate"] or 0.0
            key = (answered >= min_answered, answered + abstained)
            if best is None or key > best[0]:
                best = (key, rates)
    assert best is not None
    return best[1]


def ranking(results: list[QuestionResult]) -> dict[str, Any]:
    """Recall@k, MRR@10 and page hits of the answerable ones among ``results``."""
    answerable = [r for r in results if r.answerable]
    with_page = [r for r in answerable if r.page_hit_at_5 is not None]

    def recall(k: int) -> float:
        return round(sum(1 for r in answerable if r.doc_rank and r.doc_rank <= k) / len(answerable), 4)

    return {
        "answerable": len(answerable),
        **{f"recall@{k}": recall(k) for k in RANKS},
        "mrr@10": round(statistics.fmean(1 / r.doc_rank if r.doc_rank else 0.0 for r in answerable), 4),
        "page_hit@5": round(sum(r.page_hit_at_5 for r in with_page) / len(with_page), 4) if with_page else None,
        "page_questions": len(with_page),
    }


def by_kind(results: list[QuestionResult]) -> dict[str, dict[str, Any]]:
    """ranking() of each kind of question (identifier, definition, paraphrase, overview) that has answerable ones."""
    kinds = sorted({r.kind or "unlabelled" for r in results if r.answerable})
    return {kind: ranking([r for r in results if r.answerable and (r.kind or "unlabelled") == kind]) for kind in kinds}


def summarise(results: list[QuestionResult], policy: AbstentionPolicy) -> dict[str, Any]:
    answerable = [r for r in results if r.answerable]
    latencies = sorted(r.latency_ms for r in results)
    return {
        "questions": len(results),
        "unanswerable": len(results) - len(answerable),
        **ranking(results),
        "kinds": by_kind(results),
        "abstention_at_setting": abstention(results, policy),
        "abstention_calibrated": calibrate_threshold(results),
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2),
    }


def evaluate(
    docs_folder: Path,
    questions_path: Path,
    *,
    settings: Settings,
    collection: str | None = None,
    out_dir: Path | None = None,
    modes: tuple[str, ...] = MODES,
    embedder: Embedder | None = None,
    use_settings_data_dir: bool = False,
    split: str | None = None,
    baseline: bool = True,
) -> dict[str, Any]:
    """Ingest ``docs_folder`` into a fresh collection, run every question in each retrieval mode (and, with
    ``baseline``, through the plain recipe), report.

    State goes to a temporary directory unless ``use_settings_data_dir``; the report to ``out_dir``.
    """
    questions = load_questions(questions_path, split)
    collection = collection or f"eval-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {
        "collection": collection,
        "docs_folder": str(docs_folder),
        "questions_file": str(questions_path),
        "split": split or "all",
        "chunk_tokens": settings.chunking.tokens,
        "chunk_overlap_tokens": settings.chunking.overlap_tokens,
        "embedding_model": settings.embedding.model,
        "abstain_below_score": settings.answering.abstain_below_score,
        "abstain_unknown_words_below_score": settings.answering.abstain_unknown_words_below_score,
        "modes": {},
    }
    per_question: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as scratch:
        if not use_settings_data_dir:
            settings = settings.replace(data_dir=Path(scratch), chroma_url=None)
        runtime = Runtime(settings, embedder=embedder)
        runtime.start(run_worker=False, wait=True)
        try:
            report["ingestion"] = ingest_folder(runtime, docs_folder, collection)
            for mode in modes:
                retriever = runtime.retriever(mode=mode)
                results = run_questions(
                    lambda q, k, r=retriever: r.search(collection, q, k),
                    questions,
                    lambda q: runtime.keywords.unknown_words(collection, q),
                )
                report["modes"][mode] = summarise(results, AbstentionPolicy.from_config(settings.answering))
                per_question[mode] = [asdict(r) for r in results]
        finally:
            runtime.stop()
    if baseline:
        from rag.evaluation.plain_recipe import PlainRecipe

        plain = PlainRecipe(docs_folder)
        try:
            results = run_questions(plain.search, questions)
            report["baseline_ingestion"] = plain.ingestion
            report["modes"][BASELINE] = summarise(results, AbstentionPolicy.from_config(settings.answering))
            per_question[BASELINE] = [asdict(r) for r in results]
        finally:
            plain.close()
    if out_dir is not None:
        write_report(report, per_question, out_dir)
    return report


def write_report(report: dict[str, Any], per_question: dict[str, list[dict]], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps({**report, "per_question": per_question}, indent=2) + "\n")
    plot_recall(report, out_dir / "recall_at_k.png")
    (out_dir / "report.md").write_text(markdown(report))


def plot_recall(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for mode, figures in report["modes"].items():
        axes.plot(RANKS, [figures[f"recall@{k}"] for k in RANKS], marker="o", label=mode)
    axes.set_xlabel("k (chunks retrieved)")
    axes.set_ylabel("recall@k (gold document in the top k)")
    axes.set_xticks(RANKS)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(f"Retrieval recall, {report['ingestion']['chunks']} chunks")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown(report: dict[str, Any]) -> str:
    ingestion = report["ingestion"]
    lines = [
        "# Retrieval evaluation",
        "",
        f"{ingestion['documents_ready']} documents ({ingestion['pages']} PDF pages), {ingestion['chunks']} chunks "
        f"of {report['chunk_tokens']} tokens (overlap {report['chunk_overlap_tokens']}); "
        f"model {report['embedding_model']}; questions: split {report.get('split', 'all')}, "
        f"{next(iter(report['modes'].values()))['questions']}.",
        "",
        "| mode | recall@1 | recall@5 | recall@10 | MRR@10 | page-hit@5 | answered / abstained "
        f"at {report['abstain_below_score']} / {report.get('abstain_unknown_words_below_score')} | best thresholds:"
        " answered / abstained | p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, f in report["modes"].items():
        now, best = f["abstention_at_setting"], f["abstention_calibrated"]
        lines.append(
            f"| {mode} | {f['recall@1']:.3f} | {f['recall@5']:.3f} | {f['recall@10']:.3f} | {f['mrr@10']:.3f} | "
            f"{_fmt(f['page_hit@5'])} | {_fmt(now['answered_rate'])} / {_fmt(now['abstain_rate'])} | "
            f"{best['threshold']:.3f} / {best['unknown_words_threshold']:.3f}: {_fmt(best['answered_rate'])} / "
            f"{_fmt(best['abstain_rate'])} | "
            f"{f['latency_ms_p50']} / {f['latency_ms_p95']} |"
        )
    if "baseline_ingestion" in report:
        plain = report["baseline_ingestion"]
        lines += [
            "",
            f"Ingestion: ours {ingestion['seconds']} s ({ingestion['chunks']} chunks), the plain recipe"
            f" {plain['seconds']} s ({plain['chunks']} chunks of {1000} characters).",
        ]
    lines += ["", *kind_table(report), "![recall@k](recall_at_k.png)", ""]
    if ingestion["failed"]:
        lines += ["Documents that failed:", *(f"- {name}: {why}" for name, why in ingestion["failed"].items()), ""]
    return "\n".join(lines)


def kind_table(report: dict[str, Any]) -> list[str]:
    """Recall@5 / MRR@10 (and page-hit@5 where questions have pages) per kind of question and mode."""
    modes = report["modes"]
    kinds = sorted({kind for figures in modes.values() for kind in figures.get("kinds", {})})
    if kinds == ["unlabelled"] or not kinds:
        return []
    lines = [
        "Per kind of question: recall@5 / MRR@10 (/ page-hit@5).",
        "",
        "| kind | questions | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for kind in kinds:
        cells = []
        for figures in modes.values():
            f = figures.get("kinds", {}).get(kind)
            page = "" if f is None or f["page_hit@5"] is None else f" / {f['page_hit@5']:.3f}"
            cells.append("" if f is None else f"{f['recall@5']:.3f} / {f['mrr@10']:.3f}{page}")
        count = next(f["kinds"][kind]["answerable"] for f in modes.values() if kind in f.get("kinds", {}))
        lines.append(f"| {kind} | {count} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
