"""The ONNX Runtime backend gives PyTorch's vectors, and exports the model once."""

from __future__ import annotations

import numpy as np
import pytest

from rag.components.embedding.onnx_embedder import OnnxEmbedder
from rag.components.embedding.packaged_models import MINILM
from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder

TEXTS = [
    "How do I make fetchmail poll my IMAP server every five minutes?",
    "short",
    "The quick brown fox jumps over the lazy dog. " * 80,  # past the model's window: truncated alike
    "ünïcödé, numbers 12 345 and symbols <>&",
]

pytestmark = pytest.mark.needs_model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def test_onnx_vectors_match_pytorch(models_dir):
    reference = SentenceTransformerEmbedder(MINILM, models_dir=models_dir)
    onnx = OnnxEmbedder(MINILM, models_dir=models_dir, threads=1)
    assert onnx.dimension == reference.dimension
    assert onnx.max_tokens == reference.max_tokens
    assert onnx.count_tokens(TEXTS[0]) == reference.count_tokens(TEXTS[0])
    ours, theirs = onnx.embed(TEXTS), reference.embed(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.min(np.sum(ours * theirs, axis=1)) > 0.9999
    # Batching and the longest-first order must not change a vector, nor mix up which text is which.
    one_by_one = np.vstack([onnx.embed([text]) for text in TEXTS])
    assert np.allclose(one_by_one, ours, atol=1e-5)
    assert onnx.embed([]).shape == (0, onnx.dimension)


def test_the_export_is_made_once_and_reused(models_dir):
    OnnxEmbedder(MINILM, models_dir=models_dir, threads=1)
    graphs = list((models_dir / "onnx").rglob("model.onnx"))
    assert len(graphs) == 1
    before = graphs[0].stat().st_mtime_ns
    OnnxEmbedder(MINILM, models_dir=models_dir, threads=1)
    assert graphs[0].stat().st_mtime_ns == before
    assert list((models_dir / "onnx").rglob("model.onnx")) == graphs
