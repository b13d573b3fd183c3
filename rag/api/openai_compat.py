"""OpenAI-compatible chat: point the official `openai` SDK (or any OpenAI client) at this service.

Retrieval runs on the conversation's last user message; earlier turns go to the model as they are. The
answer comes back as a standard ChatCompletion (or a `chat.completion.chunk` stream) with an extra
`citations` field. `collection`, `top_k` and `filters` may be given as extra body fields.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.answering import Prepared, QueryService, Question
from rag.api.deps import LLMDep, PrincipalDep, QueryDep, RuntimeDep
from rag.api.errors import ApiError
from rag.api.schemas import FiltersIn, TopK
from rag.llm import LLMRejected, LLMTimeout, LLMUnavailable, Message

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    # Extensions of this service (the SDK sends them with extra_body=...).
    collection: str = "default"
    top_k: TopK | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)


@router.get("/models")
async def list_models(llm: LLMDep, runtime: RuntimeDep, _: PrincipalDep) -> dict[str, Any]:
    try:
        model = (await llm.model_info()).id
    except LLMUnavailable:
        if not runtime.llm_model:
            raise
        model = runtime.llm_model
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "rag"}]}


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, service: QueryDep, principal: PrincipalDep):
    principal.require(body.collection)
    question = _question(body, service)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        answer = await service.answer(question)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.answer},
                    "finish_reason": answer.finish_reason or "stop",
                }
            ],
            "usage": answer.usage.as_dict(),
            "citations": [c.as_dict() for c in answer.citations],
            "abstained": answer.abstained,
        }
    prepared = await service.prepare(question)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    chunks = _chunks(service, prepared, question, completion_id, created, include_usage)
    return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _question(body: ChatCompletionRequest, service: QueryService) -> Question:
    *earlier, last = body.messages
    if last.role != "user" or not last.text().strip():
        raise ApiError(422, "the last message must be a non-empty user message: it is the question")
    history: list[Message] = [
        {"role": m.role, "content": m.text()} for m in earlier if m.role in ("user", "assistant") and m.text()
    ]
    instructions = "\n\n".join(m.text() for m in earlier if m.role in ("system", "developer") and m.text())
    return service.question(
        last.text().strip(),
        collection=body.collection,
        top_k=body.top_k,
        filters=body.filters.to_filters(),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        history=history,
        extra_instructions=instructions,
    )


async def _chunks(
    service: QueryService,
    prepared: Prepared,
    question: Question,
    completion_id: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": prepared.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk(
        {"role": "assistant", "content": ""},
        citations=[c.as_dict() for c in prepared.citations],
        abstained=prepared.abstained,
    )
    try:
        async for delta in service.stream(prepared, question):
            if delta.text:
                yield chunk({"content": delta.text})
            if delta.usage is not None:
                yield chunk({}, delta.finish_reason or "stop")
                if include_usage:
                    usage_chunk = {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": prepared.model,
                        "choices": [],
                        "usage": delta.usage.as_dict(),
                    }
                    yield f"data: {json.dumps(usage_chunk)}\n\n"
    except (LLMUnavailable, LLMTimeout, LLMRejected) as exc:
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'llm_error'}})}\n\n"
    yield "data: [DONE]\n\n"
