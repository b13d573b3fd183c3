"""PyTorch against ONNX Runtime for the embedding model, on real chunks, alternating in one process.

    python bench/embedding_backends.py [--model NAME] [--rounds 3] [--threads 2] [--folder data/eval/pdf/docs]

The chunks are the service's own (parsed and chunked as ingestion does) from the PDFs in the folder, at
most --max-chunks of them. Each round embeds them all with each backend in turn; the figures are medians.
Also printed: the lowest cosine between the two backends' vectors (the same model must give the same
vectors). Threads: PyTorch's (torch.set_num_threads) and ONNX Runtime's intra-op pool get the same number.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from ingest.chunking import Chunker
from ingest.parsing.detect import DocType
from ingest.parsing.parsers import parse
from rag.components.embedding.onnx_embedder import OnnxEmbedder
from rag.components.embedding.packaged_models import MINILM
from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("data/eval/pdf/docs"))
    parser.add_argument("--max-chunks", type=int, default=600)
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    backends = {
        "pytorch": SentenceTransformerEmbedder(args.model, device="cpu", models_dir=args.models_dir),
        "onnxruntime": OnnxEmbedder(args.model, models_dir=args.models_dir, threads=args.threads),
    }
    chunker = Chunker(backends["pytorch"].count_tokens, chunk_tokens=254, overlap_tokens=48, max_tokens=254)
    texts: list[str] = []
    for pdf in sorted(args.folder.glob("*.pdf")):
        texts += [chunk.text for chunk in chunker.split(parse(pdf, DocType.PDF))]
        if len(texts) >= args.max_chunks:
            break
    texts = texts[: args.max_chunks]
    for embedder in backends.values():
        embedder.embed(texts[:8])  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in backends}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, embedder in backends.items():
            start = time.perf_counter()
            vectors[name] = embedder.embed(texts)
            seconds[name].append(time.perf_counter() - start)
    agreement = float(np.min(np.sum(vectors["pytorch"] * vectors["onnxruntime"], axis=1)))
    print(f"{args.model}: {len(texts)} chunks, {args.threads} threads each, {args.rounds} alternating rounds")
    for name in backends:
        median = statistics.median(seconds[name])
        print(f"  {name:12s} {median:7.2f} s  {len(texts) / median:7.1f} chunks/s  (runs: {seconds[name]})")
    ratio = statistics.median(seconds["pytorch"]) / statistics.median(seconds["onnxruntime"])
    print(f"  ONNX Runtime / PyTorch speed: {ratio:.2f}x; lowest cosine between their vectors: {agreement:.6f}")


if __name__ == "__main__":
    main()
