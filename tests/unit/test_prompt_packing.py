"""Prompt packing against a fake LLM whose tokenizer counts words: the packing rules alone (the real tokenizer,
vLLM's /tokenize, is in tests/test_prompting.py)."""

from __future__ import annotations

import asyncio

import pytest

from rag.ports import ChunkHit, Message, ModelInfo
from rag.services.prompting import (
    PromptTooLong,
    TokenCountCache,
    build_messages,
    format_source,
    pack_prompt,
    reading_order,
)

CONTEXT = 1000


class WordCountingLLM:
    """Counts a word as a token, and a message as two more; counts how often it was asked."""

    def __init__(self, max_model_len: int = CONTEXT):
        self.info = ModelInfo("fake", max_model_len)
        self.chat_counts = 0
        self.text_counts = 0

    @property
    def cached_info(self) -> ModelInfo | None:
        return self.info

    async def model_info(self) -> ModelInfo:
        return self.info

    async def count_chat_tokens(self, messages: list[Message]) -> int:
        self.chat_counts += 1
        return sum(len(m["content"].split()) + 2 for m in messages)

    async def count_text_tokens(self, texts: list[str]) -> list[int]:
        self.text_counts += 1
        return [len(text.split()) for text in texts]


def hit(document: str, index: int, words: int) -> ChunkHit:
    text = " ".join(f"w{index}-{n}" for n in range(words))
    metadata = {"document_id": document, "filename": f"{document}.pdf", "chunk_index": index, "page": index + 1}
    return ChunkHit(f"{document}-{index:06d}", text, metadata, 0.5)


def pack(llm, hits, *, max_tokens=100, **options):
    return asyncio.run(
        pack_prompt(
            llm, "Which facts?", [], hits, max_tokens=max_tokens, system_role=True, cache=TokenCountCache(), **options
        )
    )


def test_when_everything_fits_one_count_is_all_it_takes():
    llm = WordCountingLLM()
    packed = pack(llm, [hit("b", 1, 50), hit("a", 0, 50)])
    assert [s.hit.id for s in packed.sources] == ["a-000000", "b-000001"]  # reading order, numbered from 1
    assert [s.n for s in packed.sources] == [1, 2]
    assert llm.chat_counts == 1 and llm.text_counts == 0
    assert packed.prompt_tokens == asyncio.run(llm.count_chat_tokens(packed.messages))


def test_the_best_hits_are_kept_and_the_budget_is_never_exceeded():
    llm = WordCountingLLM()
    ranked = [hit("c", 0, 300), hit("a", 0, 300), hit("b", 0, 300), hit("d", 0, 300)]
    packed = pack(llm, ranked, max_tokens=300)
    chosen = [s.hit.id for s in packed.sources]
    assert chosen == ["a-000000", "c-000000"]  # the two best, in reading order
    assert packed.prompt_tokens + 300 <= CONTEXT


def test_a_smaller_lower_ranked_hit_may_still_fit():
    packed = pack(WordCountingLLM(), [hit("a", 0, 500), hit("b", 0, 400), hit("c", 0, 30)], max_tokens=300)
    assert [s.hit.id for s in packed.sources] == ["a-000000", "c-000000"]


def test_source_counts_are_cached_by_model_and_chunk():
    llm, cache = WordCountingLLM(), TokenCountCache()
    hits = [hit("a", 0, 400), hit("b", 0, 400), hit("c", 0, 400)]
    for _ in range(2):
        asyncio.run(pack_prompt(llm, "Q?", [], hits, max_tokens=100, system_role=True, cache=cache))
    assert llm.text_counts == 1


def test_max_tokens_must_leave_room():
    with pytest.raises(PromptTooLong, match="below the model's context length"):
        pack(WordCountingLLM(), [hit("a", 0, 5)], max_tokens=CONTEXT)


def test_no_source_fits_is_refused():
    with pytest.raises(PromptTooLong, match="no room for any source"):
        pack(WordCountingLLM(), [hit("a", 0, 900)], max_tokens=400)


def test_all_or_nothing_refuses_a_partial_prompt():
    with pytest.raises(PromptTooLong, match="the sources take"):
        pack(WordCountingLLM(), [hit("a", 0, 500), hit("b", 0, 500)], max_tokens=100, all_or_nothing=True)


def test_no_hits_gives_a_prompt_without_sources():
    packed = pack(WordCountingLLM(), [])
    assert packed.sources == [] and "(no sources)" in packed.messages[0]["content"]


def test_sources_name_their_file_and_pages():
    one = ChunkHit("x", "text", {"filename": "a.pdf", "page": 3, "page_end": 3}, 1.0)
    two = ChunkHit("y", "text", {"filename": "a.pdf", "page": 3, "page_end": 5}, 1.0)
    assert format_source(1, one).startswith("[1] (a.pdf, page 3)")
    assert format_source(2, two).startswith("[2] (a.pdf, pages 3-5)")
    assert format_source(3, ChunkHit("z", "t", {}, 1.0)).startswith("[3] (document)")


def test_reading_order_is_file_document_position():
    hits = [hit("b", 0, 1), hit("a", 2, 1), hit("a", 1, 1)]
    assert [h.id for h in reading_order(hits)] == ["a-000001", "a-000002", "b-000000"]


def test_history_goes_between_the_instructions_and_the_question():
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    messages = build_messages("Why?", [], history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "Why?"
