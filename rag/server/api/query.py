"""/v1/retrieve and /v1/query. Thin: retrieval, prompting and generation live in QueryService."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from rag.ports import LLMRejected, LLMTimeout, LLMUnavailable
from rag.server.api.deps import PrincipalDep, QueryDep, SettingsDep
from rag.server.api.errors import error_responses
from rag.server.api.schemas import (
    QueryRequest,
    QueryResponse,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResponse,
    answer_tokens,
    citations_json,
    grounding_json,
)
from rag.services.answering import Finished, Prepared, QueryService, Question

router = APIRouter(prefix="/v1", tags=["questions"])


@router.post(
    "/retrieve", response_model=RetrieveResponse, responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503)
)
async def retrieve(
    body: RetrieveRequest, service: QueryDep, principal: PrincipalDep, settings: SettingsDep
) -> RetrieveResponse:
    principal.require(body.collection)
    filters = body.filters.to_filters(settings.limits.max_filter_documents, settings.limits.max_metadata_keys)
    hits = await service.retrieve(body.collection, body.query, body.top_k, filters)
    return RetrieveResponse(chunks=[RetrievedChunk.of(hit) for hit in hits])


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **error_responses(400, 401, 403, 404, 409, 413, 422, 502, 503, 504),
    },
)
async def query(body: QueryRequest, service: QueryDep, principal: PrincipalDep, settings: SettingsDep):
    """Answer from the collection's documents, with numbered citations.

    With ``stream=true``: Server-Sent Events: ``citations`` first (in retrieval order, before the answer
    exists), then ``delta`` events with the answer's text, then ``done`` with the finish reason, usage,
    timings, the citations ranked with their quotes, and the grounding (or ``error`` if generation fails).
    """
    principal.require(body.collection)
    question = service.question(
        body.question,
        collection=body.collection,
        top_k=body.top_k,
        filters=body.filters.to_filters(settings.limits.max_filter_documents, settings.limits.max_metadata_keys),
        max_tokens=answer_tokens(body.max_tokens, settings.answering.max_answer_tokens),
        temperature=body.temperature,
        history=[{"role": m.role, "content": m.content} for m in body.history if m.content.strip()],
    )
    if not body.stream:
        answer = await service.answer(question)
        return QueryResponse(
            answer=answer.answer,
            citations=citations_json(answer.citations),
            model=answer.model,
            usage=answer.usage.as_dict(),
            abstained=answer.abstained,
            finish_reason=answer.finish_reason,
            timings=answer.timings,
            abstain_reason=answer.abstain_reason,
            closest=citations_json(answer.closest),
            grounding=grounding_json(answer.grounding),
            retrieval_query=answer.retrieval_query,
            context=answer.context,
        )
    # Retrieval and prompt packing happen before the response starts, so their errors are real HTTP errors.
    prepared = await service.prepare(question)
    return StreamingResponse(
        _sse(service, prepared, question), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def sse_event(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _sse(service: QueryService, prepared: Prepared, question: Question) -> AsyncIterator[str]:
    yield sse_event(
        "citations",
        {
            "citations": citations_json(prepared.citations),
            "abstained": prepared.abstained,
            "abstain_reason": prepared.abstain_reason,
            "closest": citations_json(prepared.closest),
            "model": prepared.model,
            "retrieval_query": prepared.retrieval_query,
            "context": prepared.context,
        },
    )
    started = time.perf_counter()
    first_token_ms = None
    try:
        async for item in service.stream(prepared, question):
            if isinstance(item, Finished):
                timings = service.timings(prepared, round((time.perf_counter() - started) * 1000, 1))
                timings["first_token_ms"] = first_token_ms or 0.0
                yield sse_event(
                    "done",
                    {
                        "usage": item.usage.as_dict(),
                        "timings": timings,
                        "finish_reason": item.finish_reason,
                        "abstained": prepared.abstained,
                        "citations": citations_json(item.citations),
                        "grounding": grounding_json(item.grounding),
                    },
                )
            elif item.text:
                if first_token_ms is None:
                    first_token_ms = round((time.perf_counter() - started) * 1000, 1)
                yield sse_event("delta", {"text": item.text})
    except (LLMUnavailable, LLMTimeout, LLMRejected) as exc:
        yield sse_event("error", {"detail": str(exc)})
