"""Sentence-transformers embeddings, loaded from local files only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.embedding_models import resolve_model_path

log = logging.getLogger(__name__)

# Special tokens the model wraps around every text ([CLS] and [SEP] for BERT-style encoders).
_SPECIAL_TOKENS = 2


def _untruncated_copy(backend):
    """A copy of the Rust tokenizer that counts every token: the model's own copy truncates and pads."""
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter


class SentenceTransformerEmbedder:
    def __init__(
        self, model: str, *, device: str = "cpu", batch_size: int = 32, models_dir: Path = Path("data/models")
    ):
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model, models_dir)
        # local_files_only: never reach for a model hub at run time (there may be none).
        self._model = SentenceTransformer(path, device=device, local_files_only=True)
        self._batch_size = batch_size
        self._counter = _untruncated_copy(self._model.tokenizer.backend_tokenizer)
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
        return int(self._model.max_seq_length) - _SPECIAL_TOKENS

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,  # cosine similarity becomes a dot product
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
