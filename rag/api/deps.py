"""What routes may ask for, taken from the app's state (tests swap them with dependency_overrides)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ingest.service import IngestService
from rag.documents import DocumentReader
from rag.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_ingest(runtime: Annotated[Runtime, Depends(get_runtime)]) -> IngestService:
    return runtime.ingest


def get_reader(runtime: Annotated[Runtime, Depends(get_runtime)]) -> DocumentReader:
    return DocumentReader(runtime.records, runtime.store)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IngestDep = Annotated[IngestService, Depends(get_ingest)]
ReaderDep = Annotated[DocumentReader, Depends(get_reader)]
