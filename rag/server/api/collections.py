"""/v1/collections: the collections this key may use, with how many documents each holds."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from rag.server.api.deps import PrincipalDep, ReaderDep
from rag.server.api.errors import error_responses

router = APIRouter(prefix="/v1/collections", tags=["documents"])


class CollectionOut(BaseModel):
    name: str
    documents: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]


@router.get("", response_model=CollectionList, responses=error_responses(401))
def list_collections(reader: ReaderDep, principal: PrincipalDep) -> CollectionList:
    """Collections exist while they hold documents; an upload to a new name creates one."""
    counted = reader.collections(within=principal.collections)
    return CollectionList(collections=[CollectionOut(name=name, documents=count) for name, count in counted])
