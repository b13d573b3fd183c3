"""Follow-up questions: what to search for when a question leans on the conversation before it.

"How do I turn it off?" searched on its own words finds whatever document talks about turning things off.
Retrieval needs the subject from earlier turns. But a new, unrelated question asked later in the same
conversation must not be dragged back to the old subject. Chosen by RAG_FOLLOWUP_QUERY:

- ``recent``: two searches, the question alone and the recent user turns joined to it, fused by reciprocal
  rank (deterministic, no LLM call): whichever reading finds the better passages, they come up;
- ``llm``: the served model rewrites the question into a standalone one; when it fails or its rewrite does
  not look like a question about this conversation, ``recent`` is used instead;
- ``off``: the question alone.

Measured by bench/followups.py on a follow-up set built from the FAQ eval (docs/api.md, "Follow-up questions").
"""

from __future__ import annotations

import logging
from typing import Literal

from rag.ports import ChunkHit, LLMClient, LLMRejected, LLMTimeout, LLMUnavailable, Message
from rag.services.retrieval import reciprocal_rank_fusion
from rag.words import query_words

log = logging.getLogger(__name__)

FollowupQuery = Literal["recent", "llm", "off"]
# Earlier user turns joined to the question; each is cut to this many characters, so a pasted document in
# the history cannot drown the question.
RECENT_TURNS = 2
TURN_CHARS = 500
_REWRITE_TOKENS = 64

REWRITE_INSTRUCTIONS = (
    "Rewrite the user's last question as one standalone question that names what it is about, using the "
    "conversation before it. Reply with the rewritten question only."
)


def recent_turns_query(question: str, history: list[Message], turns: int = RECENT_TURNS) -> str:
    earlier = [m["content"].strip()[:TURN_CHARS] for m in history if m.get("role") == "user" and m["content"].strip()]
    return "\n".join([*earlier[-turns:], question])


def plausible_rewrite(rewrite: str, question: str, history: list[Message]) -> bool:
    """A rewrite is used only if it is one short line whose content words all come from the conversation:
    a small model otherwise answers the question, or invents a subject."""
    if not rewrite or len(rewrite) > 2 * len(recent_turns_query(question, history)) + 50 or "\n" in rewrite:
        return False
    said = set(query_words(" ".join([*(m["content"] for m in history), question])))
    words = query_words(rewrite)
    return bool(words) and sum(word in said for word in words) >= 0.8 * len(words)


async def retrieval_queries(
    question: str, history: list[Message], mode: FollowupQuery, llm: LLMClient | None
) -> list[str]:
    """The texts to search with for ``question`` asked after ``history``; more than one are to be fused."""
    if mode == "off" or not any(m.get("role") == "user" for m in history):
        return [question]
    if mode == "llm":
        rewrite = await _rewrite(question, history, llm)
        if rewrite is not None:
            return [rewrite]
    return [recent_turns_query(question, history), question]  # the joined turns, and a new subject


async def retrieval_query(question: str, history: list[Message], mode: FollowupQuery, llm: LLMClient | None) -> str:
    """The main text to search with (the only one, but for ``recent``)."""
    return (await retrieval_queries(question, history, mode, llm))[0]


async def _rewrite(question: str, history: list[Message], llm: LLMClient) -> str | None:
    """The served model's standalone version of the question, or None when it fails or is not plausible."""
    conversation = "\n".join(f"{m['role']}: {m['content'].strip()[:TURN_CHARS]}" for m in history[-6:])
    messages: list[Message] = [
        {"role": "system", "content": REWRITE_INSTRUCTIONS},
        {"role": "user", "content": f"{conversation}\nuser: {question}\n\nStandalone question:"},
    ]
    try:
        completion = await llm.complete(messages, max_tokens=_REWRITE_TOKENS, temperature=0.0)
    except (LLMUnavailable, LLMTimeout, LLMRejected) as exc:
        log.warning("follow-up rewrite failed, joining recent turns instead: %s", exc)
        return None
    rewrite = completion.text.strip().strip('"')
    if completion.finish_reason != "length" and plausible_rewrite(rewrite, question, history):
        return rewrite
    return None


def fuse(results: list[list[ChunkHit]], k: int, rrf_k: int = 60) -> list[ChunkHit]:
    """The hits of several searches in one list, by reciprocal rank; a hit found by both keeps its better
    score (each score is the cosine to the query that found it)."""
    if len(results) == 1:
        return results[0][:k]
    best: dict[str, ChunkHit] = {}
    for hits in results:
        for hit in hits:
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    order = reciprocal_rank_fusion([[hit.id for hit in hits] for hits in results], rrf_k)
    return [best[chunk_id] for chunk_id in order[:k]]
