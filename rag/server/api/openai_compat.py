"""OpenAI-compatible chat: point the official `openai` SDK (or any OpenAI client) at this service.

The question is the conversation's last user message; earlier turns go to the model as they are, and a
follow-up is searched with its conversation (rag/services/followups.py). The answer comes back as a standard
ChatCompletion (or a `chat.completion.chunk` stream) with extra `citations` and `grounding` fields.

Collections are models: `GET /v1/models` lists the served model and one `rag/<collection>` per collection
the key may use, and `model: "rag/manuals"` asks the `manuals` collection, so a client that cannot send
extra body fields (a chat front end) can still choose. Any other model name (the served model's, or one a
client hard-codes) means the `collection` body field, `default` unless given. Errors come in OpenAI's shape
(rag/server/api/errors.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.service import COLLECTION_NAME
from rag.ports import LLMRejected, LLMTimeout, LLMUnavailable, Message
from rag.server.api.deps import LLMDep, PrincipalDep, QueryDep, RuntimeDep, SettingsDep
from rag.server.api.errors import ApiError, openai_error, openai_error_responses, status_of
from rag.server.api.schemas import (
    NOT_BLANK_PATTERN,
    CollectionName,
    FiltersIn,
    PositiveInt,
    TopK,
    answer_tokens,
    citations_json,
    grounding_json,
)
from rag.server.api.validation import invalid
from rag.services.answering import Finished, Prepared, QueryService, Question
from rag.settings import Settings

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            texts = (part.get("text") for part in self.content if part.get("type") == "text")
            return "".join(text for text in texts if isinstance(text, str))
        return self.content or ""


_HAS_TEXT = {"type": "string", "pattern": NOT_BLANK_PATTERN}
# The rule _has_a_question checks, in the schema: some user message has text that is not all white space.
_SOME_USER_TEXT = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                _HAS_TEXT,
                {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {"type": {"const": "text"}, "text": _HAS_TEXT},
                    },
                },
            ]
        },
    },
}


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str | None = None
    messages: Annotated[
        list[ChatMessageIn],
        Field(
            min_length=1,
            description="The conversation; the last user message is the question.",
            json_schema_extra={"contains": _SOME_USER_TEXT},
        ),
    ]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    # Extensions of this service (the SDK sends them with extra_body=...).
    collection: CollectionName = "default"
    top_k: TopK | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)

    @model_validator(mode="after")
    def _has_a_question(self) -> ChatCompletionRequest:
        if self.question_index() is None:
            raise ValueError("the conversation needs a user message with text: the last one is the question")
        return self

    def answer_tokens(self, settings_max: int) -> int | None:
        """max_completion_tokens (OpenAI's current name) or max_tokens, each within RAG_MAX_ANSWER_TOKENS."""
        completion = answer_tokens(self.max_completion_tokens, settings_max, "max_completion_tokens")
        legacy = answer_tokens(self.max_tokens, settings_max)
        return completion or legacy

    def question_index(self) -> int | None:
        """Where the question is: the last user message with text."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.role == "user" and message.text().strip():
                return index
        return None


COLLECTION_MODEL_PREFIX = "rag/"


async def _served_model(llm: LLMDep, runtime: RuntimeDep) -> str:
    try:
        return (await llm.model_info()).id
    except LLMUnavailable:
        if not runtime.llm_model:
            raise
        return runtime.llm_model


@router.get("/models", responses=openai_error_responses(401, 405, 503))
async def list_models(llm: LLMDep, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    """The served model, and one ``rag/<collection>`` model per collection this key may use."""
    served = await _served_model(llm, runtime)
    collections = [c for c in runtime.records.collections() if principal.may_use(c)]
    ids = [served, *(f"{COLLECTION_MODEL_PREFIX}{c}" for c in sorted(collections))]
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "rag"} for i in ids]}


def collection_for(body: ChatCompletionRequest) -> str:
    """The collection the request asks: named by its model (``rag/<collection>``), else its body field. Any
    other model name (the served model's, or one a client hard-codes) means the body field, as before."""
    model = body.model
    if model is None or not model.startswith(COLLECTION_MODEL_PREFIX):
        return body.collection
    collection = model.removeprefix(COLLECTION_MODEL_PREFIX)
    if not COLLECTION_NAME.fullmatch(collection):
        reason = f"model {model!r} does not name a collection (GET /v1/models lists them)"
        raise ApiError(404, reason, code="model_not_found")
    if "collection" in body.model_fields_set and body.collection != collection:
        raise invalid(
            f"model {model!r} asks collection {collection!r} but the collection field says {body.collection!r}",
            ("body", "collection"),
        )
    return collection


@router.post(
    "/chat/completions",
    responses={
        200: {"content": {"application/json": {}, "text/event-stream": {}}},
        **openai_error_responses(400, 401, 403, 404, 405, 409, 413, 422, 502, 503, 504),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    service: QueryDep,
    principal: PrincipalDep,
    settings: SettingsDep,
):
    collection = collection_for(body)
    principal.require(collection)
    question = _question(body, collection, service, settings)
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
            "citations": citations_json(answer.citations),
            "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "closest": citations_json(answer.closest),
            "grounding": grounding_json(answer.grounding),
            "context": answer.context,
        }
    prepared = await service.prepare(question)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    chunks = _chunks(service, prepared, question, completion_id, created, include_usage)
    return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _question(body: ChatCompletionRequest, collection: str, service: QueryService, settings: Settings) -> Question:
    asked = body.question_index()
    earlier, last = body.messages[:asked], body.messages[asked]
    history: list[Message] = [
        {"role": m.role, "content": m.text()} for m in earlier if m.role in ("user", "assistant") and m.text()
    ]
    instructions = "\n\n".join(m.text() for m in earlier if m.role in ("system", "developer") and m.text())
    return service.question(
        last.text().strip(),
        collection=collection,
        top_k=body.top_k,
        filters=body.filters.to_filters(settings.limits.max_filter_documents, settings.limits.max_metadata_keys),
        max_tokens=body.answer_tokens(settings.answering.max_answer_tokens),
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
        citations=citations_json(prepared.citations),
        abstained=prepared.abstained,
        abstain_reason=prepared.abstain_reason,
        closest=citations_json(prepared.closest),
        context=prepared.context,
    )
    try:
        async for item in service.stream(prepared, question):
            if isinstance(item, Finished):
                # The last choice chunk carries the evidence: it exists only once the answer does.
                yield chunk(
                    {},
                    item.finish_reason or "stop",
                    citations=citations_json(item.citations),
                    grounding=grounding_json(item.grounding),
                )
                if include_usage:
                    usage_chunk = {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": prepared.model,
                        "choices": [],
                        "usage": item.usage.as_dict(),
                    }
                    yield f"data: {json.dumps(usage_chunk)}\n\n"
            elif item.text:
                yield chunk({"content": item.text})
    except (LLMUnavailable, LLMTimeout, LLMRejected) as exc:
        # The same object an error before the stream gets as its body (rag/server/api/errors.py).
        yield f"data: {json.dumps(openai_error(status_of(exc), str(exc)))}\n\n"
    yield "data: [DONE]\n\n"
