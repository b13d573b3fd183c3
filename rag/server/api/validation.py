"""422 answers in FastAPI's documented validation shape, for rules the service checks itself."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError


def validation_detail(msg: str, loc: tuple[str | int, ...], kind: str = "value_error") -> list[dict[str, Any]]:
    return [{"type": kind, "loc": list(loc), "msg": msg}]


def invalid(msg: str, loc: tuple[str | int, ...], kind: str = "value_error") -> RequestValidationError:
    """A 422 like pydantic's, for a rule that depends on a setting (so it cannot live in the model)."""
    return RequestValidationError(validation_detail(msg, loc, kind))
