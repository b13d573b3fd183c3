"""bfloat16 on a CPU that has it, float16 on a GPU: the same vectors, within what retrieval can notice."""

from __future__ import annotations

import numpy as np
import pytest

from rag.components.embedding.packaged_models import MINILM
from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder, cpu_has_bf16, resolve_precision
from tests.test_onnx_embedder import TEXTS

pytestmark = pytest.mark.needs_model


def test_auto_precision_follows_the_hardware():
    assert resolve_precision("auto", "cuda") == "float16"
    assert resolve_precision("auto", "cuda:1") == "float16"
    assert resolve_precision("auto", "cpu") == ("bfloat16" if cpu_has_bf16() else "float32")
    assert resolve_precision("float32", "cpu") == "float32"


def test_bfloat16_vectors_are_unit_vectors_close_to_float32(tmp_path):
    exact = SentenceTransformerEmbedder(MINILM, models_dir=tmp_path, precision="float32")
    fast = SentenceTransformerEmbedder(MINILM, models_dir=tmp_path, precision="bfloat16")
    assert fast.precision == "bfloat16"
    reference, vectors = exact.embed(TEXTS), fast.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Measured on 400 real chunks: mean cosine 0.9999, lowest 0.998 (docs/performance.md, "Performance").
    assert (vectors * reference).sum(axis=1).min() > 0.995
    assert fast.embed([]).shape == (0, fast.dimension)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_same_text_gets_the_same_vector_alone_or_in_a_batch(tmp_path, precision):
    embedder = SentenceTransformerEmbedder(MINILM, models_dir=tmp_path, precision=precision)
    alone = embedder.embed([TEXTS[0]])[0]
    batched = embedder.embed(TEXTS)[0]
    assert float(alone @ batched) > 0.999
