"""The evaluation harness on a small set whose answers we know, and `rag eval` from the shell."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from rag.evaluation.retrieval_eval import QuestionResult, abstention, calibrate_threshold, evaluate, load_questions
from rag.services.abstention import AbstentionPolicy
from rag.settings import Settings
from tests.helpers import DATA, venv_script

QUESTIONS = [
    {
        "id": "q1",
        "question": "In which year did the Quillhaven light first shine?",
        "doc": "harbour-almanac.pdf",
        "page": 2,
        "kind": "paraphrase",
    },
    {
        "id": "q2",
        "question": "How high can the spring tide get in Quillhaven?",
        "doc": "harbour-almanac.pdf",
        "page": 3,
        "kind": "paraphrase",
    },
    {
        "id": "q3",
        "question": "How many kinds of pear are grown by the Velmora growers?",
        "doc": "orchard-cooperative.pdf",
        "page": 2,
        "kind": "overview",
    },
    {
        "id": "q4",
        "question": "What reading of the bearing temperature means pump P-103 must be stopped?",
        "doc": "pump-maintenance.pdf",
        "page": 3,
        "kind": "identifier",
    },
    {"id": "n1", "question": "What is the capital of Mongolia?", "doc": None},
    {"id": "n2", "question": "How do I configure Kubernetes ingress TLS certificates?", "doc": None},
]


@pytest.fixture
def eval_set(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("harbour-almanac.pdf", "orchard-cooperative.pdf", "pump-maintenance.pdf"):
        (docs / name).write_bytes((DATA / name).read_bytes())
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return docs, questions


def test_evaluate_reports_every_figure_and_writes_the_report(eval_set, tmp_path, embedder):
    docs, questions = eval_set
    out = tmp_path / "report"
    report = evaluate(docs, questions, settings=Settings(_env_file=None), out_dir=out, embedder=embedder)
    assert report["ingestion"]["documents_ready"] == 3 and report["ingestion"]["pages"] == 10
    assert set(report["modes"]) == {"dense", "bm25", "hybrid", "adaptive", "plain recipe"}
    hybrid = report["modes"]["hybrid"]
    assert (hybrid["questions"], hybrid["answerable"], hybrid["unanswerable"], hybrid["page_questions"]) == (6, 4, 2, 4)
    assert hybrid["recall@5"] == 1.0 and hybrid["recall@10"] == 1.0
    assert 0.5 < hybrid["mrr@10"] <= 1.0
    assert hybrid["page_hit@5"] == 1.0
    # Every figure per kind of question too, the unanswerable ones (no kind) left out.
    kinds = report["modes"]["adaptive"]["kinds"]
    assert {kind: figures["answerable"] for kind, figures in kinds.items()} == {
        "identifier": 1,
        "overview": 1,
        "paraphrase": 2,
    }
    assert kinds["paraphrase"]["recall@5"] == 1.0 and kinds["identifier"]["page_hit@5"] == 1.0
    calibrated = hybrid["abstention_calibrated"]
    assert calibrated["answered_rate"] == 1.0 and calibrated["abstain_rate"] == 1.0
    assert hybrid["latency_ms_p50"] > 0 and hybrid["latency_ms_p95"] >= hybrid["latency_ms_p50"]

    # The plain LangChain recipe ran on the same folder and questions, in the same run.
    plain = report["modes"]["plain recipe"]
    assert plain["questions"] == 6 and plain["recall@10"] == 1.0 and plain["page_hit@5"] == 1.0
    assert report["baseline_ingestion"]["pages"] == 10 and report["baseline_ingestion"]["seconds"] > 0

    saved = json.loads((out / "report.json").read_text())
    assert saved["modes"] == report["modes"] and len(saved["per_question"]["hybrid"]) == 6
    assert (out / "recall_at_k.png").read_bytes().startswith(b"\x89PNG")
    summary = (out / "report.md").read_text()
    assert "| hybrid |" in summary and "| plain recipe |" in summary
    assert "| kind | questions | dense | bm25 | hybrid | adaptive | plain recipe |" in summary
    assert "| paraphrase | 2 | 1.000 / " in summary


def test_a_split_keeps_only_its_questions(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [{"question": "a?", "doc": "a.pdf", "split": "dev"}, {"question": "b?", "doc": None, "split": "test"}]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    assert [q.question for q in load_questions(path, "dev")] == ["a?"]
    assert [q.question for q in load_questions(path, "test")] == ["b?"]
    assert len(load_questions(path)) == 2
    with pytest.raises(ValueError, match="no questions in split 'other'"):
        load_questions(path, "other")


def test_metrics_from_known_results():
    def result(answerable, rank, score, unknown=0):
        return QuestionResult("x", answerable, rank, None, score, 1.0, unknown_words=unknown)

    results = [result(True, 1, 0.8), result(True, 3, 0.5), result(False, None, 0.3), result(False, None, 0.6)]
    assert abstention(results, AbstentionPolicy(0.55, 0.55)) == {
        "threshold": 0.55,
        "unknown_words_threshold": 0.55,
        "answered_rate": 0.5,
        "abstain_rate": 0.5,
    }
    best = calibrate_threshold(results)
    assert best["answered_rate"] + best["abstain_rate"] == 1.5  # no threshold separates 0.5 from 0.6 here
    # The unanswerable 0.6 names a word no document holds: the second threshold separates it.
    results[-1] = result(False, None, 0.6, unknown=1)
    best = calibrate_threshold(results)
    assert (best["answered_rate"], best["abstain_rate"]) == (1.0, 1.0)
    assert best["threshold"] < 0.5 < best["unknown_words_threshold"] > 0.6


def test_bad_question_files_are_refused(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"doc": "a.pdf"}\n')
    with pytest.raises(ValueError, match=r"q\.jsonl:1"):
        load_questions(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no questions"):
        load_questions(path)


@pytest.mark.slow
def test_rag_eval_from_the_shell(eval_set, tmp_path):
    docs, questions = eval_set
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "unused-state")}
    result = subprocess.run(
        [
            *(venv_script("rag"), "eval", str(docs), str(questions)),
            *("--mode", "bm25,adaptive", "--no-baseline", "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "| bm25 |" in result.stdout and "| adaptive |" in result.stdout
    assert "| kind | questions | bm25 | adaptive |" in result.stdout  # figures per kind of question
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["modes"]) == {"bm25", "adaptive"} and report["modes"]["bm25"]["recall@10"] == 1.0
    assert not (tmp_path / "unused-state").exists()  # evaluation state is temporary
