"""Sentence-transformers embeddings on PyTorch, loaded from local files only (onnx_embedder.py beside it runs
the same model on ONNX Runtime). Which backend and device: ``choose_backend`` (RAG_EMBEDDING_BACKEND and
RAG_EMBEDDING_DEVICE)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.components.embedding.packaged_models import resolve_model_path

log = logging.getLogger(__name__)

# Special tokens the model wraps around every text ([CLS] and [SEP] for BERT-style encoders).
SPECIAL_TOKENS = 2


def torch_normalize(vectors):
    import torch

    return torch.nn.functional.normalize(vectors, p=2, dim=1)


def untruncated_copy(backend):
    """A copy of the Rust tokenizer that counts every token: the model's own copy truncates and pads."""
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


def resolve_device(device: str) -> str:
    """``auto``: the GPU when PyTorch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_backend(backend: str, device: str) -> tuple[str, str]:
    """(backend, device) for RAG_EMBEDDING_BACKEND and RAG_EMBEDDING_DEVICE. ``auto`` is PyTorch, in fp16 on
    a GPU: on this project's CPUs ONNX Runtime in fp32 measured no faster than PyTorch 2.13 with
    transformers 5, and int8 lost more retrieval than allowed (docs/performance.md, "Performance")."""
    device = resolve_device(device)
    if backend == "auto":
        backend = "torch"
    if backend.startswith("onnx") and device != "cpu":
        raise ValueError(f"RAG_EMBEDDING_BACKEND={backend} runs on the CPU only, not on {device!r}")
    return backend, device


def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): there oneDNN runs bf16 matrix
    products at about twice the fp32 rate; elsewhere bf16 is emulated and slower than fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: float16 on a GPU, bfloat16 on a CPU that has it natively, else float32.

    Measured on this project's 2-core EPYC (AVX512-BF16), 2 threads, 400 real PDF chunks: bf16 weights
    embedded 2.0x as fast as fp32 for MiniLM and for mpnet, with a mean cosine of 0.9999 to the fp32 vectors
    and retrieval on the eval's dev splits within 0.005 (docs/performance.md, "Performance")."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


class SentenceTransformerEmbedder:
    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        models_dir: Path = Path("data/models"),
        precision: str = "float32",
    ):
        import torch
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model, models_dir)
        device = resolve_device(device)
        # local_files_only: never reach for a model hub at run time (there may be none).
        self._model = SentenceTransformer(path, device=device, local_files_only=True)
        self.device = device
        self.precision = resolve_precision(precision, device)
        # Half precision on a GPU, bfloat16 on a CPU that has it: ~2x the throughput either way.
        self._model.to(getattr(torch, self.precision))
        self._batch_size = batch_size
        self._counter = untruncated_copy(self._model.tokenizer.backend_tokenizer)
        self.name = model
        self.dimension = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        log.info("embedding model %s loaded from %s (%d dimensions)", model, Path(path).name, self.dimension)

    @property
    def tokenizer(self):
        return self._model.tokenizer

    def count_tokens(self, text: str) -> int:
        # The Rust tokenizer directly: no Python-side overhead, and no "sequence too long" warning for texts
        # that the splitter is only measuring.
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length) - SPECIAL_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,  # cosine similarity becomes a dot product
            convert_to_tensor=True,  # numpy has no bfloat16: the cast to float32 happens in torch
            show_progress_bar=False,
        )
        if vectors.dtype.itemsize < 4:
            # Normalised again in float32: a 16-bit unit vector is a unit vector to only ~3 digits.
            vectors = torch_normalize(vectors.float())
        return vectors.cpu().numpy()
