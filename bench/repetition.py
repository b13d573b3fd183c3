"""Answers that stop: vLLM's repetition guards on the served model, measured on real questions.

    python bench/repetition.py [--llm http://127.0.0.1:PORT/v1] [--questions 24] [--max-tokens 256]

The FAQ eval's dev questions (data/eval/faq) are answered by the service's own QueryService (retrieval,
prompt, generation) once per setting below, all questions of a setting at once (vLLM batches them). Printed
per setting: how many answers ran to the length cap, the share of repeated word trigrams (0 = none), mean
answer tokens, answers that carry a [n] marker, and the share of the gold entry's words the answer holds (a
guard: a penalty that stops repetition by saying less is no gain). The first row is the baseline: no guard.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

from rag.evaluation.retrieval_eval import ingest_folder, load_questions
from rag.ports import SamplingGuard
from rag.runtime import Runtime
from rag.services.evidence import cited_numbers, stems
from rag.services.retrieval import Filters
from rag.settings import Settings

FAQ_SET = Path(__file__).resolve().parents[1] / "data" / "eval" / "faq"
GUARDS = [
    SamplingGuard(),
    SamplingGuard(repetition_penalty=1.1),
    SamplingGuard(repetition_penalty=1.2),
    SamplingGuard(repetition_penalty=1.3),
    SamplingGuard(frequency_penalty=0.5),
    SamplingGuard(frequency_penalty=1.0),
    SamplingGuard(repetition_penalty=1.1, frequency_penalty=0.5),
]


def repeated_trigrams(text: str) -> float:
    words = re.findall(r"\w+", text.lower())
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    return 1 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0


async def answer_all(runtime: Runtime, guard: SamplingGuard, questions, max_tokens: int):
    # The served QueryService (evidence and all), talking through a client with this guard.
    llm = runtime.make_llm(model=None, timeout_s=600, sampling=guard)
    service = runtime.query_service(llm)
    asked = [
        service.question(
            q.question, collection="faq", top_k=None, filters=Filters(), max_tokens=max_tokens, temperature=0
        )
        for q in questions
    ]
    try:
        return await asyncio.gather(*(service.answer(q) for q in asked))
    finally:
        await llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", help="a running vLLM's /v1 URL; without it the local one is started")
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--state", type=Path, help="keep the ingested set here, and reuse it next time")
    args = parser.parse_args()
    questions = [q for q in load_questions(FAQ_SET / "questions.jsonl", args.split) if q.doc][: args.questions]
    with tempfile.TemporaryDirectory() as scratch:
        state = args.state or scratch
        settings = Settings(_env_file=None).replace(data_dir=Path(state), chroma_url=None, llm_base_url=args.llm)
        runtime = Runtime(settings, with_llm=not args.llm)
        runtime.start(run_worker=False, wait=True)
        try:
            if not runtime.records.collection_exists("faq"):
                ingest_folder(runtime, FAQ_SET / "docs", "faq")
            while runtime.local_llm is not None and not runtime.local_llm.healthy:
                if runtime.local_llm_error:
                    raise SystemExit(f"the local LLM did not start: {runtime.local_llm_error}")
                time.sleep(2)
            print(f"{len(questions)} FAQ {args.split} questions, max_tokens {args.max_tokens}, temperature 0")
            for guard in GUARDS:
                started = time.perf_counter()
                answers = asyncio.run(answer_all(runtime, guard, questions, args.max_tokens))
                answered = [a for a in answers if not a.abstained]
                capped = sum(a.finish_reason == "length" for a in answered)
                repeats = statistics.mean(repeated_trigrams(a.answer) for a in answered)
                tokens = statistics.mean(a.usage.completion_tokens for a in answered)
                marked = sum(bool(cited_numbers(a.answer)) for a in answered)
                gold = {q.id: stems(q.answer or "") for q in questions}
                coverage = statistics.mean(
                    len(stems(a.answer) & gold[q.id]) / max(1, len(gold[q.id]))
                    for q, a in zip(questions, answers, strict=True)
                    if not a.abstained
                )
                print(
                    f"  repetition_penalty {guard.repetition_penalty:.1f} frequency_penalty "
                    f"{guard.frequency_penalty:.1f}: at the cap {capped:2d}/{len(answered)}  repeated trigrams "
                    f"{repeats:.3f}  tokens {tokens:5.1f}  with a marker {marked:2d}  gold words {coverage:.3f}  "
                    f"({time.perf_counter() - started:.0f} s)"
                )
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
