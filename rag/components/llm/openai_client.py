"""The one way to the LLM: vLLM's OpenAI-compatible HTTP API.

The embedded CPU server, the compose GPU server and any other vLLM deployment are the same code path.
Chat messages go to /v1/chat/completions so vLLM applies the model's own chat template; prompt sizes come
from vLLM's /tokenize with the same messages, so they are exact for whatever model is served.

Every request, vLLM's own routes (/tokenize, /health, the models' context lengths) included, goes through the
`openai` client, with its own timeout type: one HTTP stack, one set of errors, and no object of one HTTP
library handed to another (openai 3.x runs on httpx2, which refuses httpx's objects).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from rag.ports import (
    Completion,
    Delta,
    LLMRejected,
    LLMTimeout,
    LLMUnavailable,
    Message,
    ModelInfo,
    SamplingGuard,
    Usage,
)

log = logging.getLogger(__name__)


def server_root(base_url: str) -> str:
    """vLLM serves /tokenize and /health beside /v1, not under it."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class OpenAICompatibleLLM:
    """Talks to a vLLM server through the official `openai` async client (and /tokenize beside it)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None,
        api_key: str,
        timeout_s: float,
        connect_timeout_s: float,
        sampling: SamplingGuard | None = None,
    ):
        from openai import AsyncOpenAI, Timeout

        # max_retries=0: a retry would double the load on a struggling server and hide the cause from users.
        self._openai = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,
        )
        self._root = server_root(base_url)
        self._configured_model = model
        self._sampling = sampling or SamplingGuard()
        self._info: ModelInfo | None = None
        self._info_lock = asyncio.Lock()

    @property
    def cached_info(self) -> ModelInfo | None:
        return self._info

    async def close(self) -> None:
        await self._openai.close()

    # --- model facts ---------------------------------------------------------------------------------

    async def model_info(self) -> ModelInfo:
        if self._info is not None:
            return self._info
        async with self._info_lock:
            if self._info is None:
                listing = await self._get("/v1/models")
                models = listing.get("data") or []
                if not models:
                    raise LLMUnavailable("the LLM server serves no model")
                chosen = next((m for m in models if m["id"] == self._configured_model), None)
                if chosen is None:
                    if self._configured_model:
                        names = ", ".join(m["id"] for m in models)
                        raise LLMUnavailable(f"model {self._configured_model!r} is not served (served: {names})")
                    chosen = models[0]
                # vLLM reports the context length it was started with; other servers may not.
                self._info = ModelInfo(chosen["id"], int(chosen.get("max_model_len") or 4096))
        return self._info

    async def ready(self) -> str:
        try:
            await self.model_info()
            await self._get("/health", cast_to=str)
        except (LLMUnavailable, LLMTimeout, LLMRejected) as exc:
            return str(exc)
        return "ok"

    # --- token counts --------------------------------------------------------------------------------

    async def count_chat_tokens(self, messages: list[Message]) -> int:
        """Prompt tokens of these messages with the chat template and the generation prompt applied."""
        model = (await self.model_info()).id
        body = {"model": model, "messages": messages, "add_generation_prompt": True}
        return int((await self._post("/tokenize", body))["count"])

    async def count_text_tokens(self, texts: list[str]) -> list[int]:
        model = (await self.model_info()).id

        async def count(text: str) -> int:
            body = {"model": model, "prompt": text, "add_special_tokens": False}
            return int((await self._post("/tokenize", body))["count"])

        return list(await asyncio.gather(*(count(text) for text in texts)))

    # --- generation ----------------------------------------------------------------------------------

    async def complete(self, messages: list[Message], *, max_tokens: int, temperature: float) -> Completion:
        model = (await self.model_info()).id
        try:
            response = await self._openai.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=False,
                **self._sampling.request_fields(),
            )
        except Exception as exc:
            raise _translate(exc) from exc
        choice = response.choices[0]
        usage = Usage(response.usage.prompt_tokens, response.usage.completion_tokens) if response.usage else Usage()
        return Completion(choice.message.content or "", choice.finish_reason, usage)

    async def stream(self, messages: list[Message], *, max_tokens: int, temperature: float) -> AsyncIterator[Delta]:
        """Yield the answer as it is generated. Closing the iterator early closes the HTTP stream, which
        makes vLLM abort the request and free its slot."""
        model = (await self.model_info()).id
        try:
            stream = await self._openai.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
                **self._sampling.request_fields(),
            )
        except Exception as exc:
            raise _translate(exc) from exc
        finish_reason = None
        try:
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta.content:
                        yield Delta(text=choice.delta.content)
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    yield Delta(finish_reason=finish_reason, usage=usage)
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            await stream.close()

    # --- plumbing ------------------------------------------------------------------------------------

    # vLLM's routes beside the OpenAI ones, through the client's documented verbs for undocumented endpoints;
    # an absolute URL, since they live at the server's root and not under /v1.

    async def _get(self, path: str, *, cast_to: type = dict) -> Any:
        import openai

        try:
            return await self._openai.get(f"{self._root}{path}", cast_to=cast_to)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        import openai

        try:
            return await self._openai.post(f"{self._root}{path}", cast_to=dict, body=body)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc


def _translate(exc: Exception) -> Exception:
    import openai

    match exc:
        case openai.APITimeoutError():
            return LLMTimeout("the LLM server did not answer in time")
        case openai.APIConnectionError():
            return LLMUnavailable("the LLM server is unreachable")
        case openai.APIStatusError() if exc.status_code >= 500:
            return LLMUnavailable(f"the LLM server failed: HTTP {exc.status_code}")
        case openai.APIStatusError():
            return LLMRejected(f"the LLM server refused the request: {exc.message}")
    return exc
