"""Building the prompt: numbered sources packed into the model's context by exact token count.

The budget is the served model's context length minus the answer's max_tokens, measured with the served
model's own tokenizer and chat template (vLLM's /tokenize), so the prompt can never overflow the context.
Sources are placed in a stable order (document, then position), so the same question over the same
documents produces the same prompt prefix and reuses vLLM's prefix cache.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from rag.ports import ChunkHit, LLMClient, Message

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources below. "
    "Cite each source you use with its number in square brackets, like [1] or [2]. "
    "If the sources do not contain the answer, say that the documents do not contain it. "
    "Never make up facts that are not in the sources."
)
NOT_FOUND_ANSWER = "I could not find an answer to that in the documents."
# Tokens the blank lines between two sources may add beyond the sources' own counts.
SEPARATOR_TOKENS = 4


class PromptTooLong(ValueError):
    """The question, conversation and answer length do not fit the model's context."""


@dataclass(frozen=True, slots=True)
class Source:
    n: int
    hit: ChunkHit


@dataclass(frozen=True, slots=True)
class PackedPrompt:
    messages: list[Message]
    sources: list[Source]
    prompt_tokens: int


def format_source(n: int, hit: ChunkHit) -> str:
    meta = hit.metadata
    where = meta.get("filename", "document")
    page, page_end = meta.get("page"), meta.get("page_end")
    if page is not None:
        where += f", page {page}" if page_end in (None, page) else f", pages {page}-{page_end}"
    return f"[{n}] ({where})\n{hit.text}"


def reading_order(hits: list[ChunkHit]) -> list[ChunkHit]:
    def position(hit: ChunkHit) -> tuple[str, str, int]:
        meta = hit.metadata
        return meta.get("filename", ""), meta.get("document_id", ""), meta.get("chunk_index", 0)

    return sorted(hits, key=position)


def build_messages(
    question: str,
    sources: list[Source],
    history: list[Message],
    *,
    system_role: bool = True,
    extra_instructions: str = "",
) -> list[Message]:
    instructions = SYSTEM_PROMPT + (f"\n\n{extra_instructions}" if extra_instructions else "")
    context = "\n\n".join(format_source(source.n, source.hit) for source in sources) or "(no sources)"
    system = f"{instructions}\n\nSources:\n\n{context}"
    if system_role:
        return [{"role": "system", "content": system}, *history, {"role": "user", "content": question}]
    # Some chat templates (Gemma's, for one) refuse a system role: the instructions go with the question.
    return [*history, {"role": "user", "content": f"{system}\n\nQuestion: {question}"}]


class TokenCountCache:
    """Token counts of formatted sources, by model and chunk id: chunks never change under an id."""

    def __init__(self, capacity: int = 50_000):
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._capacity = capacity

    def get(self, key: tuple[str, str]) -> int | None:
        count = self._counts.get(key)
        if count is not None:
            self._counts.move_to_end(key)
        return count

    def put(self, key: tuple[str, str], count: int) -> None:
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)


async def pack_prompt(
    llm: LLMClient,
    question: str,
    history: list[Message],
    ranked_hits: list[ChunkHit],
    *,
    max_tokens: int,
    system_role: bool,
    extra_instructions: str = "",
    cache: TokenCountCache,
    all_or_nothing: bool = False,
) -> PackedPrompt:
    """Fit as many of the best hits as the context allows, then order them for reading and prefix reuse.
    ``all_or_nothing``: every hit, or PromptTooLong."""
    info = await llm.model_info()
    if max_tokens >= info.max_model_len:
        raise PromptTooLong(f"max_tokens must be below the model's context length of {info.max_model_len} tokens")
    budget = info.max_model_len - max_tokens

    def build(sources: list[Source]) -> list[Message]:
        return build_messages(
            question, sources, history, system_role=system_role, extra_instructions=extra_instructions
        )

    def numbered(hits: list[ChunkHit]) -> list[Source]:
        return [Source(n, hit) for n, hit in enumerate(reading_order(hits), start=1)]

    # Usually every retrieved source fits: then one exact count of the whole prompt is all it takes (each
    # count is a round trip to the LLM server, and under load every millisecond before generation counts).
    if ranked_hits:
        sources = numbered(ranked_hits)
        messages = build(sources)
        exact = await llm.count_chat_tokens(messages)
        if exact <= budget:
            return PackedPrompt(messages, sources, exact)
        if all_or_nothing:
            raise PromptTooLong(f"the sources take {exact} tokens; {budget} are left for them and the question")

    base_tokens = await llm.count_chat_tokens(build([]))
    if base_tokens > budget:
        raise PromptTooLong(
            f"the question and conversation take {base_tokens} tokens; with max_tokens={max_tokens} that exceeds "
            f"the model's context of {info.max_model_len} tokens"
        )
    counts = await _source_token_counts(llm, info.id, ranked_hits, cache)
    chosen: list[ChunkHit] = []
    used = base_tokens
    for hit, count in zip(ranked_hits, counts, strict=True):
        if used + count + SEPARATOR_TOKENS <= budget:  # a smaller, lower-ranked chunk may still fit
            chosen.append(hit)
            used += count + SEPARATOR_TOKENS
    if ranked_hits and not chosen:
        raise PromptTooLong(
            f"max_tokens={max_tokens} leaves no room for any source in the model's context of "
            f"{info.max_model_len} tokens"
        )
    # The estimate is checked against the exact count of the final prompt; drop the weakest hit if over.
    while True:
        sources = numbered(chosen)
        messages = build(sources)
        exact = await llm.count_chat_tokens(messages)
        if exact <= budget or len(chosen) <= 1:
            break
        chosen.pop()
    if exact > budget:
        raise PromptTooLong(f"the prompt does not fit the model's context of {info.max_model_len} tokens")
    return PackedPrompt(messages, sources, exact)


async def _source_token_counts(llm: LLMClient, model: str, hits: list[ChunkHit], cache: TokenCountCache) -> list[int]:
    # Counted with a two-digit number: never fewer tokens than the number the source will really get.
    missing = [hit for hit in hits if cache.get((model, hit.id)) is None]
    if missing:
        counts = await llm.count_text_tokens([format_source(99, hit) for hit in missing])
        for hit, count in zip(missing, counts, strict=True):
            cache.put((model, hit.id), count)
    return [cache.get((model, hit.id)) or 0 for hit in hits]
