"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from rag.server.api.deps import LLMDep, RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]  # each dependency: "ok", "loading", "starting", or why it is not ready


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: the checks say which part and why"}},
)
async def readyz(runtime: RuntimeDep, llm: LLMDep) -> JSONResponse:
    """Ready when the store answers, the embedding model is loaded and the LLM serves its model."""
    checks = await run_in_threadpool(runtime.readiness)
    if "llm" not in checks:  # no local server still starting: ask the LLM server itself
        checks["llm"] = await llm.ready()
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
