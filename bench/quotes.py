"""Which quote method finds the sentence that answers, and where the grounding threshold goes.

    python bench/quotes.py [--splits dev test] [--top-k 5]

The PDF eval set (data/eval/pdf) is ingested once with the default settings. Each answerable question is
retrieved as the service would; each quote method (rag/services/evidence.py) then picks a quote in each of the top
chunks, from the question alone (its words weighed by their rarity in the collection, as the service weighs
them), and the citations are ordered by the method's support, as the service does. A quote "holds the answer"
when the question's `evidence` (a verbatim phrase of the gold page) is in it, letters and digits compared.
Printed per split: how often the first citation's quote, or the first or second's, holds it; how often any
retrieved chunk does (the ceiling); and the baseline, each chunk's first sentence in retrieval order.

Answers (``--answers FILE``, and always the eval's own answers): the quote and the citations' order also
depend on the answer, and a small model's answer is often wrong. For each question, the citations' quotes and
order are chosen again with an answer: the eval's own (written by a person: a model that is right) and, given a
file, a served model's. Printed: the previous rule (the quote by the embedding alone; the order by the quote's
match, plus 0.5 times the answer's support, plus the retrieval score) against the shipped one (the quote by the
embedding and the question's rare words together; the order by QUESTION_WEIGHT times the quote's match, plus
ANSWER_WEIGHT times the answer's support, plus the retrieval score) and other weights. The file comes from a
service started on the same --state (stop it before the measuring run):

    RAG_DATA_DIR=STATE rag serve --port 8765 &
    python bench/quotes.py --ask http://127.0.0.1:8765 --answers served.json   # asks, prints what it served
    python bench/quotes.py --state STATE --answers served.json

Whole documents (``--whole``): for each question, its gold document named by a filter. Context recall: how
often the phrase reaches the model, in the top chunks of that document against the document whole, when
it fits a 128k-token window (Phi-3-mini-128k) or the local model's 4,096, counted with the local model's
tokenizer.

Grounding: the gold `answer` (written by a person, in other words than the page's) against the chunks of
its gold page (supported) and against the chunks retrieved for a question about another document
(unsupported). The threshold with the best balanced accuracy on dev is printed, with its accuracy on test.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

from rag.evaluation.retrieval_eval import ingest_folder
from rag.runtime import Runtime
from rag.services.evidence import ANSWER_WEIGHT, QUESTION_WEIGHT, EvidenceFinder, RecentVectors, sentences
from rag.settings import Settings

PDF_SET = Path(__file__).resolve().parents[1] / "data" / "eval" / "pdf"
METHODS = ("lexical", "embedding", "both")
UNWEIGHTED = "both, +2 around, words alike"
PREVIOUS = "previous default"


def letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def on_gold_page(hit, question: dict) -> bool:
    meta = hit.metadata
    return meta.get("filename") == question["doc"] and meta.get("page", -1) <= question["page"] <= meta.get(
        "page_end", meta.get("page", -1)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["dev", "test"])
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--state", type=Path, help="keep the ingested set here, and reuse it next time")
    parser.add_argument("--whole", action="store_true", help="also measure whole documents against chunks")
    parser.add_argument("--answers", type=Path, help="a served model's answers (written by --ask)")
    parser.add_argument("--ask", metavar="URL", help="ask the service at URL (/v1/query), write --answers, stop")
    args = parser.parse_args()
    questions = [json.loads(line) for line in (PDF_SET / "questions.jsonl").read_text().splitlines() if line.strip()]
    questions = [q for q in questions if q.get("doc") and q.get("evidence") and q.get("split") in args.splits]
    if args.ask:
        ask_service(args.ask, questions, args.answers or Path("served.json"))
        return
    defaults = Settings(_env_file=None)
    with tempfile.TemporaryDirectory() as scratch:
        state = args.state or Path(scratch)
        runtime = Runtime(defaults.replace(data_dir=state, chroma_url=None))
        runtime.start(run_worker=False, wait=True)
        try:
            if not runtime.records.collection_exists("quotes"):
                ingest_folder(runtime, PDF_SET / "docs", "quotes")
            retriever = runtime.retriever()
            hits = {q["id"]: retriever.search("quotes", q["question"], args.top_k) for q in questions}
            rarity = {q["id"]: retriever.word_frequencies("quotes", q["question"]) for q in questions}
            # Every variant embeds the same sentences: each is embedded once for the whole run.
            embed = RecentVectors(runtime.embedder.embed, max_texts=1_000_000)
            finders = {m: EvidenceFinder(embed, method="both", grounding_method=m) for m in METHODS}
            variants = {
                f"{m}, {label}": EvidenceFinder(embed, method=m, neighbours=around)
                for m in METHODS
                for label, around in (("sentence", (0, 0)), ("+1 around", (1, 1)), ("+2 around", (2, 2)))
            }
            # The shipped method with every word of the question weighing the same; and the previous default.
            variants[UNWEIGHTED] = EvidenceFinder(embed, method="both", neighbours=(2, 2))
            variants[PREVIOUS] = EvidenceFinder(embed, method="embedding", neighbours=(2, 2), question_weight=1.0)
            quote_figures(questions, hits, variants, rarity)
            answered = {"the eval's own answers": ({q["id"]: q["answer"] for q in questions}, None)}
            if args.answers:
                served = {row["id"]: row for row in json.loads(args.answers.read_text())}
                answered["the served model's answers"] = ({i: row["answer"] for i, row in served.items()}, served)
            for regime, (answers, served) in answered.items():
                answer_figures(regime, questions, hits, embed, answers, served, rarity)
            if args.whole:
                whole_document_figures(runtime, questions, args.top_k)
            grounding_figures(questions, hits, finders)
        finally:
            runtime.stop()


def quote_figures(questions, hits, finders, rarity) -> None:
    for split in sorted({q["split"] for q in questions}):
        chosen = [q for q in questions if q["split"] == split]
        rows: dict[str, list[tuple[bool, bool, int]]] = {"first sentence (baseline)": []}
        ceiling = top1 = top2 = 0
        for q in chosen:
            gold = letters(q["evidence"])
            texts = [hit.text for hit in hits[q["id"]]]
            holding = [gold in letters(text) for text in texts]
            ceiling += any(holding)
            top1 += any(holding[:1])
            top2 += any(holding[:2])
            firsts = [next(iter(sentences(text)), None) for text in texts]
            firsts = [span.text if span else "" for span in firsts]
            rows["first sentence (baseline)"].append(
                (*holds_phrase(q, firsts), statistics.mean(map(len, firsts or [""])))
            )
            for name, finder in finders.items():
                sources = dict(enumerate(texts, start=1))
                frequencies = None if name in (UNWEIGHTED, PREVIOUS) else rarity[q["id"]]
                evidence = finder.find(q["question"], "", sources, word_frequencies=frequencies)
                scores = {n: hit.score for n, hit in enumerate(hits[q["id"]], start=1)}
                mixed = finder.find(q["question"], "", sources, scores, frequencies).order
                orders = (("by support", evidence.order), ("by retrieval", sorted(evidence.sources)), ("mixed", mixed))
                for order_name, order in orders:
                    quotes = [evidence.sources[n].quote for n in order]
                    lengths = [len(quote.text) for quote in quotes if quote is not None] or [0]
                    row = (*holds_phrase(q, [quote and quote.text for quote in quotes]), statistics.mean(lengths))
                    rows.setdefault(f"{name}, {order_name}", []).append(row)
        print(
            f"\n{split}: {len(chosen)} questions; the phrase is in some retrieved chunk for {ceiling}, "
            f"in the first for {top1}, in the first two for {top2}"
        )
        for name, values in rows.items():
            first = sum(v[0] for v in values)
            top2 = sum(v[1] for v in values)
            length = statistics.mean(v[2] for v in values)
            print(
                f"  {name:28s} first quote {first:3d} ({first / len(values):.3f})  first or second {top2:3d} "
                f"({top2 / len(values):.3f})  mean quote {length:5.0f} chars"
            )


def ask_service(url: str, questions, answers_file: Path) -> None:
    """Ask every question as a person would (/v1/query, the service's defaults), 4 at a time, and keep what
    came back; print how often the first or second citation's quote, as served, holds the phrase."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with httpx.Client(base_url=url, timeout=600) as client, ThreadPoolExecutor(4) as pool:

        def ask(q: dict) -> dict:
            response = client.post("/v1/query", json={"question": q["question"], "collection": "quotes"})
            response.raise_for_status()
            return response.json()

        responses = list(pool.map(ask, questions))
    rows = [
        {"id": q["id"], "answer": r["answer"], "citations": r.get("citations") or [], "abstained": r.get("abstained")}
        for q, r in zip(questions, responses, strict=True)
    ]
    answers_file.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} answers written to {answers_file}; as served:")
    for split in sorted({q["split"] for q in questions}):
        held = [
            holds_phrase(q, [citation.get("quote") and citation["quote"]["text"] for citation in row["citations"]])
            for q, row in zip(questions, rows, strict=True)
            if q["split"] == split
        ]
        first, top2 = sum(h[0] for h in held), sum(h[1] for h in held)
        print(f"  {split}: {len(held)} questions, first citation's quote {first}, first or second {top2}")


def holds_phrase(q: dict, quotes: list[str | None]) -> tuple[bool, bool]:
    """Whether the first quote, and the first or second, hold the question's phrase."""
    gold = letters(q["evidence"])
    holds = [bool(quote) and gold in letters(quote) for quote in quotes]
    return bool(holds[:1] and holds[0]), any(holds[:2])


def answer_figures(regime: str, questions, hits, embed, answers: dict[str, str], served: dict | None, rarity) -> None:
    """The quotes and order chosen with an answer: the previous rule against the shipped one and other weights.
    With a served model's answers, its own citations (texts and retrieval scores) are used, as it cited them."""
    previous = EvidenceFinder(embed, method="embedding", neighbours=(2, 2), question_weight=1.0, answer_weight=0.5)
    finders = {
        (question_weight, answer_weight): EvidenceFinder(
            embed, neighbours=(2, 2), question_weight=question_weight, answer_weight=answer_weight
        )
        for question_weight in sorted({1.0, QUESTION_WEIGHT, 3.0})
        for answer_weight in sorted({0.0, ANSWER_WEIGHT, 0.5})
    }
    print(f"\nwith {regime}: the first citation's quote / the first or second's holds the phrase")
    for split in sorted({q["split"] for q in questions}):
        rows: dict[str, list[tuple[bool, bool]]] = {}
        for q in (q for q in questions if q["split"] == split):
            answer = answers.get(q["id"], "")
            if served is not None:
                cited = served[q["id"]]["citations"]
                texts = {c["n"]: c["text"] for c in cited}
                scores = {c["n"]: c["score"] for c in cited}
            else:
                texts = dict(enumerate((hit.text for hit in hits[q["id"]]), start=1))
                scores = {n: hit.score for n, hit in enumerate(hits[q["id"]], start=1)}
            if not texts:
                continue
            # The previous rule: the quote by the embedding alone, every word of the question weighing the same.
            before = previous.find(q["question"], answer, texts, scores)
            rows.setdefault("previous rule", []).append(
                holds_phrase(q, [before.sources[n].quote and before.sources[n].quote.text for n in before.order])
            )
            for (question_weight, answer_weight), finder in finders.items():
                evidence = finder.find(q["question"], answer, texts, scores, rarity[q["id"]])
                shipped = (question_weight, answer_weight) == (QUESTION_WEIGHT, ANSWER_WEIGHT)
                name = f"question {question_weight:g}, answer {answer_weight:g}" + (" (shipped)" if shipped else "")
                quotes = [evidence.sources[n].quote and evidence.sources[n].quote.text for n in evidence.order]
                rows.setdefault(name, []).append(holds_phrase(q, quotes))
        for name, held in rows.items():
            first, top2 = sum(h[0] for h in held), sum(h[1] for h in held)
            print(f"  {split}: {name:28s} first {first:3d}  first or second {top2:3d}  of {len(held)}")


def whole_document_figures(runtime: Runtime, questions, top_k: int) -> None:
    from transformers import AutoTokenizer

    from rag.services.documents import WholeDocuments
    from rag.services.retrieval import Filters

    tokenizer = AutoTokenizer.from_pretrained(str(runtime.settings.storage.models_dir / "SmolLM2-135M-Instruct"))
    records, _ = runtime.records.list(collection="quotes", limit=10_000)
    by_name = {record.filename: record for record in records}
    whole = WholeDocuments(runtime.records, runtime.store, max_documents=1)
    texts = {name: whole.text(record) for name, record in by_name.items()}
    tokens = {name: len(tokenizer(text, add_special_tokens=False)["input_ids"]) for name, text in texts.items()}
    retriever = runtime.retriever()
    print("\nwhole documents: the gold document named by a filter; does the phrase reach the model?")
    for split in sorted({q["split"] for q in questions}):
        chosen = [q for q in questions if q["split"] == split]
        in_chunks = in_128k = in_4k = 0
        for q in chosen:
            gold, name = letters(q["evidence"]), q["doc"]
            only = Filters(document_ids=[by_name[name].id])
            chunk_hit = any(gold in letters(h.text) for h in retriever.search("quotes", q["question"], top_k, only))
            in_text = gold in letters(texts[name])
            in_chunks += chunk_hit
            in_128k += in_text if tokens[name] <= 128_000 - 1_024 else chunk_hit
            in_4k += in_text if tokens[name] <= 4_096 - 256 else chunk_hit
        fits = sum(tokens[q["doc"]] <= 128_000 - 1_024 for q in chosen)
        print(
            f"  {split}: {len(chosen)} questions; top {top_k} chunks {in_chunks / len(chosen):.3f}, whole when it fits "
            f"128k {in_128k / len(chosen):.3f} (fits for {fits}), 4k {in_4k / len(chosen):.3f}"
        )
    sizes = ", ".join(f"{name} {count:,}" for name, count in sorted(tokens.items(), key=lambda item: item[1]))
    print(f"  document sizes in tokens: {sizes}")


def grounding_figures(questions, hits, finders) -> None:
    pairs: dict[str, list[tuple[str, str, dict[int, str], bool]]] = {}
    by_split: dict[str, list[dict]] = {}
    for q in questions:
        by_split.setdefault(q["split"], []).append(q)
    for split, chosen in by_split.items():
        for index, q in enumerate(chosen):
            gold = [hit.text for hit in hits[q["id"]] if on_gold_page(hit, q)]
            if gold:
                pairs.setdefault(split, []).append((q["question"], q["answer"], dict(enumerate(gold, 1)), True))
            other = next((o for o in chosen[index + 1 :] + chosen[:index] if o["doc"] != q["doc"]), None)
            if other is not None:
                texts = dict(enumerate((hit.text for hit in hits[other["id"]]), start=1))
                pairs[split].append((q["question"], q["answer"], texts, False))
    print("\ngrounding: the gold answer's sentences against its gold page's chunks (supported) and another")
    print("document's chunks (unsupported); threshold chosen on dev by balanced accuracy")
    for method, finder in finders.items():
        scores = {
            split: [
                (min(s.support for s in finder.find(question, answer, texts).grounding), label)
                for question, answer, texts, label in rows
            ]
            for split, rows in pairs.items()
        }
        best = max((balanced(scores.get("dev", []), t), t) for t in [x / 100 for x in range(5, 96)])
        line = f"  {method:10s} threshold {best[1]:.2f}: dev {best[0]:.3f}"
        if "test" in scores:
            line += f"  test {balanced(scores['test'], best[1]):.3f}"
        print(line + f"  ({sum(label for _, label in scores.get('dev', []))} supported pairs on dev)")


def balanced(scored: list[tuple[float, bool]], threshold: float) -> float:
    if not scored:
        return 0.0
    positives = [s for s, label in scored if label]
    negatives = [s for s, label in scored if not label]
    hit = sum(s >= threshold for s in positives) / max(1, len(positives))
    reject = sum(s < threshold for s in negatives) / max(1, len(negatives))
    return (hit + reject) / 2


if __name__ == "__main__":
    main()
