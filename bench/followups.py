"""Follow-up questions: what to search with, measured on a follow-up set built from the FAQ eval.

    python bench/followups.py [--split dev] [--llm http://127.0.0.1:PORT/v1] [--limit N]

The FAQ set (data/eval/faq) is ingested once with the default settings. The follow-up set is built from
its questions, deterministically:

- follow-up: turn 1 is a FAQ question, the assistant's reply the first sentence of its entry; then a
  follow-up that names nothing ("How do I set that up?", ...). The gold document is turn 1's. On its own
  words the follow-up finds some other entry: a distractor.
- topic switch (the control): after the same first turn, the user asks an unrelated FAQ question; its
  gold is its own entry. Joining the turns must not cost much here.

Strategies: off, recent (the question alone and the joined turns, fused), joined (the joined turns only,
the first version of recent), and llm when an LLM is given.

Each strategy of rag/services/followups.py (off, recent, and llm when an LLM is given or can be started) answers
both; printed: recall@1 and recall@5 of the gold entry, and for llm how often its rewrite was used.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rag.components.llm.openai_client import OpenAICompatibleLLM
from rag.evaluation.retrieval_eval import ingest_folder, load_questions
from rag.runtime import Runtime
from rag.services.evidence import sentences
from rag.services.followups import fuse, recent_turns_query, retrieval_queries
from rag.settings import Settings

FAQ_SET = Path(__file__).resolve().parents[1] / "data" / "eval" / "faq"
FOLLOW_UPS = [
    "How do I set that up?",
    "Is there a way to turn it off?",
    "Can you give me an example?",
    "What are the alternatives?",
    "Why does that happen?",
    "Where can I read more about it?",
]


def conversations(questions) -> list[dict]:
    rows = []
    answerable = [q for q in questions if q.doc and q.answer]
    for index, q in enumerate(answerable):
        first = next(iter(sentences(q.answer or "")), None)
        history = [
            {"role": "user", "content": q.question},
            {"role": "assistant", "content": first.text if first else q.answer or ""},
        ]
        rows.append({"kind": "follow-up", "history": history, "question": FOLLOW_UPS[index % 6], "gold": q.doc})
        other = answerable[(index + len(answerable) // 2) % len(answerable)]
        if other.doc != q.doc:
            rows.append({"kind": "topic switch", "history": history, "question": other.question, "gold": other.doc})
    return rows


async def measure(runtime: Runtime, rows: list[dict], llm: OpenAICompatibleLLM | None) -> None:
    retriever = runtime.retriever()
    strategies = ["off", "joined", "recent"] + (["llm"] if llm else [])
    for kind in ("follow-up", "topic switch"):
        chosen = [row for row in rows if row["kind"] == kind]
        print(f"\n{kind}: {len(chosen)} conversations")
        for strategy in strategies:
            top1 = top5 = rewritten = 0
            # All at once: vLLM batches the rewrites.
            if strategy == "joined":
                all_queries = [[recent_turns_query(row["question"], row["history"])] for row in chosen]
            else:
                all_queries = await asyncio.gather(
                    *(retrieval_queries(row["question"], row["history"], strategy, llm) for row in chosen)
                )
            for row, queries in zip(chosen, all_queries, strict=True):
                if strategy == "llm" and queries[0] != recent_turns_query(row["question"], row["history"]):
                    rewritten += 1
                hits = fuse([retriever.search("faq", text, 5) for text in queries], 5)
                files = [hit.metadata.get("filename") for hit in hits]
                top1 += files[:1] == [row["gold"]]
                top5 += row["gold"] in files
            line = f"  {strategy:7s} recall@1 {top1 / len(chosen):.3f}  recall@5 {top5 / len(chosen):.3f}"
            if strategy == "llm":
                line += f"  (the model's rewrite used for {rewritten} of {len(chosen)})"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--llm", help="a running vLLM's /v1 URL; without it the local one is started")
    parser.add_argument("--no-llm", action="store_true", help="measure off and recent only")
    parser.add_argument("--limit", type=int, default=0, help="at most this many first turns")
    parser.add_argument("--state", type=Path, help="keep the ingested set here, and reuse it next time")
    args = parser.parse_args()
    questions = load_questions(FAQ_SET / "questions.jsonl", args.split)
    if args.limit:
        questions = questions[: args.limit]
    rows = conversations(questions)
    defaults = Settings(_env_file=None)
    with tempfile.TemporaryDirectory() as scratch:
        state = args.state or scratch
        settings = defaults.replace(data_dir=Path(state), chroma_url=None)
        runtime = Runtime(settings, with_llm=not (args.llm or args.no_llm))
        runtime.start(run_worker=False, wait=True)
        try:
            if not runtime.records.collection_exists("faq"):
                ingest_folder(runtime, FAQ_SET / "docs", "faq")
            llm = None
            if not args.no_llm:
                while runtime.local_llm is not None and not runtime.local_llm.healthy:
                    if runtime.local_llm_error:
                        raise SystemExit(f"the local LLM did not start: {runtime.local_llm_error}")
                    time.sleep(2)
                url = args.llm or runtime.llm_base_url
                llm = OpenAICompatibleLLM(url, model=None, api_key="EMPTY", timeout_s=120, connect_timeout_s=5)
            asyncio.run(measure(runtime, rows, llm))
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
