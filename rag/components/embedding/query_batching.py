"""Questions that arrive together are embedded together.

Under concurrent load each /v1/query embeds its question from its own thread, and sixteen one-text forward
passes cost far more than one pass over sixteen texts (bench/query_embedding.py: all-mpnet-base-v2 on two
cores does ~13 questions/s one at a time and ~30 in batches). No timer is involved: a question that finds
the model idle is embedded at once; questions arriving while a pass runs wait for it to end and then go
together in the next one, led by the first of them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ingest.ports import Embedder


class _Request:
    __slots__ = ("done", "error", "leads", "text", "vector")

    def __init__(self, text: str):
        self.text = text
        self.done = threading.Event()
        self.leads = False  # this request's thread runs the next batch
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None

    def result(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        assert self.vector is not None
        return self.vector


class BatchingEmbedder:
    """An Embedder whose one-text calls are gathered into batches of at most ``max_batch``."""

    def __init__(self, embedder: Embedder, max_batch: int = 16):
        self._embedder = embedder
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._busy = False
        self.batches = 0  # forward passes run, for tests and metrics

    def __getattr__(self, name: str):  # count_tokens, max_tokens, dimension, name, ...
        return getattr(self._embedder, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._embedder.embed(texts)
        request = _Request(texts[0])
        with self._lock:
            self._pending.append(request)
            leads = not self._busy
            self._busy = True
        if not leads:
            request.done.wait()
            if not request.leads:
                return request.result()[None, :]
            request.done.clear()
        self._run_next_batch()
        return request.result()[None, :]

    def _run_next_batch(self) -> None:
        with self._lock:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
        try:
            vectors = self._embedder.embed([request.text for request in batch])
            for request, vector in zip(batch, vectors, strict=True):
                request.vector = vector
        except BaseException as exc:  # every waiter gets the error, none hangs
            for request in batch:
                request.error = exc
        self.batches += 1
        with self._lock:
            if self._pending:
                following = self._pending[0]
                following.leads = True
                following.done.set()
            else:
                self._busy = False
        for request in batch:
            request.done.set()
