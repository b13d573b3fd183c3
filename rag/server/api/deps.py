"""What routes may ask for, taken from the app's state (tests swap them with dependency_overrides)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest.service import IngestService
from rag.ports import LLMClient
from rag.runtime import Runtime
from rag.server.auth import KeyRing, Principal
from rag.services.answering import QueryService
from rag.services.documents import DocumentReader
from rag.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_ingest(runtime: Annotated[Runtime, Depends(get_runtime)]) -> IngestService:
    return runtime.ingest


def get_reader(runtime: Annotated[Runtime, Depends(get_runtime)]) -> DocumentReader:
    return DocumentReader(runtime.records, runtime.store, runtime.files, runtime.page_images)


def get_principal(request: Request) -> Principal:
    """The caller, from its API key (every route but health and metrics depends on this)."""
    keyring: KeyRing = request.app.state.keyring
    return keyring.authenticate(request.headers.get("authorization"))


def get_llm(runtime: Annotated[Runtime, Depends(get_runtime)]) -> LLMClient:
    return runtime.llm


def get_query_service(runtime: Annotated[Runtime, Depends(get_runtime)]) -> QueryService:
    return runtime.query_service()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IngestDep = Annotated[IngestService, Depends(get_ingest)]
ReaderDep = Annotated[DocumentReader, Depends(get_reader)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
QueryDep = Annotated[QueryService, Depends(get_query_service)]
