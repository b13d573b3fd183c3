"""Prompt packing against the served model's real tokenizer (vLLM's /tokenize), and the embedded-LLM guard."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from rag.components.llm.local_vllm import LocalVLLM
from rag.components.llm.openai_client import OpenAICompatibleLLM
from rag.components.llm.packaged_model import LocalModelUnavailable
from rag.ports import ChunkHit
from rag.services.prompting import PromptTooLong, TokenCountCache, build_messages, pack_prompt
from rag.settings import LocalLLMConfig, Settings


def hit(document: str, index: int, words: int, score: float) -> ChunkHit:
    text = " ".join(f"fact{index}-{n}" for n in range(words))
    metadata = {"document_id": document, "filename": f"{document}.pdf", "chunk_index": index, "page": index + 1}
    return ChunkHit(f"{document}-{index:06d}", text, metadata, score)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def llm(llm_server):
    def make() -> OpenAICompatibleLLM:
        return OpenAICompatibleLLM(llm_server, model=None, api_key="EMPTY", timeout_s=30, connect_timeout_s=5)

    return make


def test_packing_fills_the_budget_exactly_and_never_overflows(llm):
    async def scenario():
        client = llm()
        try:
            info = await client.model_info()
            ranked = [hit("b", 7, 120, 0.9), hit("a", 3, 120, 0.8), hit("a", 1, 120, 0.7), hit("c", 0, 120, 0.6)]
            # Room for the question and about two sources, not four.
            one_source = await client.count_chat_tokens(build_messages("Which facts?", [], []))
            max_tokens = info.max_model_len - one_source - 2 * 420
            packed = await pack_prompt(
                client, "Which facts?", [], ranked, max_tokens=max_tokens, system_role=True, cache=TokenCountCache()
            )
            exact = await client.count_chat_tokens(packed.messages)
            return info, max_tokens, packed, exact
        finally:
            await client.close()

    info, max_tokens, packed, exact = run(scenario())
    assert packed.prompt_tokens == exact
    assert exact + max_tokens <= info.max_model_len
    chosen = [source.hit.id for source in packed.sources]
    assert 1 <= len(chosen) < 4
    assert "b-000007" in chosen  # the best hit always gets in
    # Numbered in reading order (document, then position), not in rank order.
    assert chosen == sorted(chosen)
    assert [source.n for source in packed.sources] == list(range(1, len(chosen) + 1))
    assert "[1] (a.pdf, page" in packed.messages[0]["content"] or "[1] (b.pdf, page" in packed.messages[0]["content"]


def test_the_same_sources_give_the_same_prompt_whatever_their_rank(llm):
    async def scenario(order):
        client = llm()
        try:
            packed = await pack_prompt(
                client, "Which facts?", [], order, max_tokens=64, system_role=True, cache=TokenCountCache()
            )
            return packed.messages
        finally:
            await client.close()

    hits = [hit("a", 2, 30, 0.9), hit("b", 0, 30, 0.8), hit("a", 0, 30, 0.7)]
    assert run(scenario(hits)) == run(scenario(list(reversed(hits))))


def test_a_question_too_long_for_the_context_is_refused(llm):
    async def scenario():
        client = llm()
        try:
            question = "why " * 3000
            await pack_prompt(
                client, question, [], [hit("a", 0, 10, 0.9)], max_tokens=16, system_role=True, cache=TokenCountCache()
            )
        finally:
            await client.close()

    with pytest.raises(PromptTooLong, match="exceeds the model's context"):
        run(scenario())


def test_without_a_system_role_the_instructions_go_with_the_question():
    messages = build_messages("Why?", [], [{"role": "user", "content": "Hi"}], system_role=False)
    assert [m["role"] for m in messages] == ["user", "user"]
    assert "only the numbered sources" in messages[-1]["content"] and messages[-1]["content"].endswith("Question: Why?")


def test_missing_vllm_is_reported_with_how_to_install_it(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a)
    )
    server = LocalVLLM(LocalLLMConfig(), Settings(_env_file=None).storage.models_dir, tmp_path / "vllm.log")
    with pytest.raises(LocalModelUnavailable, match=r"vLLM is not installed.*requirements\.lock"):
        server.start()
