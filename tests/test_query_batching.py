"""Concurrent questions share forward passes and each still gets its own vector (the real model)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.components.embedding.query_batching import BatchingEmbedder

QUESTIONS = [f"How do I configure option number {n} of the relay?" for n in range(24)] + ["short", "x" * 3000]


def test_concurrent_questions_get_their_own_vectors_in_fewer_passes(embedder):
    batching = BatchingEmbedder(embedder, max_batch=8)
    expected = embedder.embed(QUESTIONS)
    start = threading.Barrier(len(QUESTIONS))

    def ask(question: str) -> np.ndarray:
        start.wait()
        return batching.embed([question])

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        vectors = list(pool.map(ask, QUESTIONS))
    for question, vector, wanted in zip(QUESTIONS, vectors, expected, strict=True):
        assert vector.shape == (1, embedder.dimension)
        assert float(vector[0] @ wanted) > 0.999, question  # its own question's vector, not a neighbour's
    assert batching.batches < len(QUESTIONS)
    # Alone, a question is embedded at once, in its own pass.
    before = batching.batches
    assert float(batching.embed(["short"])[0] @ expected[-2]) > 0.999 and batching.batches == before + 1
    # Several texts at once (not a question) go straight through; attributes come from the embedder.
    assert batching.embed(QUESTIONS[:3]).shape == (3, embedder.dimension)
    assert batching.dimension == embedder.dimension and batching.count_tokens("a b") == embedder.count_tokens("a b")


class _Failing:
    def embed(self, texts):
        raise RuntimeError("the model is gone")


def test_a_failed_pass_reaches_every_waiting_question_and_none_hangs():
    batching = BatchingEmbedder(_Failing())
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batching.embed, [f"q{n}"]) for n in range(8)]
        for future in futures:
            with pytest.raises(RuntimeError, match="the model is gone"):
                future.result(timeout=10)
