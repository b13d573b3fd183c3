# Two commands on a fresh machine (see README): `make serve` and `make test`.
# bash: lock-check compares with process substitution.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LOCK := requirements.lock
# What the lock is made from: the project's dependencies with every extra, for the one platform it serves.
LOCK_INPUTS := pyproject.toml --extra dev --extra local-llm --extra bench --extra embedding-model \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	--custom-compile-command 'make lock'
# Where torch's CPU build comes from: PyTorch's CPU index, unless pip already has a wheel folder to look in.
TORCH_INDEX ?= $(if $(PIP_FIND_LINKS),,https://download.pytorch.org/whl/cpu)
TORCH_SOURCE := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),--find-links $(PIP_FIND_LINKS))

.PHONY: setup lock lock-check ocr serve test test-fast test-deps docs settings-docs lint format bench-ingest eval-data eval eval-sets compose-cpu compose-cpu-build compose-cpu-down

setup: $(VENV)/.installed ocr

# Tesseract reads scanned PDFs and images (ingest/parsing/ocr.py). Installed with apt when missing (as root, or
# with sudo); elsewhere install it yourself (docs/formats.md, OCR). Without it the service runs, and scans fail with
# a reason that says what to install.
ocr:
	@if ! command -v tesseract > /dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo > /dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! command -v apt-get > /dev/null; then \
	    echo "Tesseract is not installed and cannot be installed here: scanned PDFs and images will fail (docs/formats.md, OCR)" >&2; \
	  else \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends tesseract-ocr tesseract-ocr-eng; \
	  fi; \
	fi

# Every install path (this, the Dockerfile, CI) installs requirements.lock and nothing else: every
# distribution pinned at an exact version with its hashes, none resolved on the spot (--no-deps), so a
# release made after the lock changes nothing here. The project itself goes in last, also with --no-deps,
# built with the lock's setuptools. torch is the lock's CPU build (2.13.0+cpu): pip takes it from the wheel
# folder in PIP_FIND_LINKS where one is set (the project machines), else from PyTorch's CPU index.
# A venv that exists is made anew, so that nothing the old lock had stays behind.
$(VENV)/.installed: $(LOCK) pyproject.toml
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PIP) install --quiet --no-deps --require-hashes $(TORCH_SOURCE) -r $(LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	@if $(PIP) list 2>/dev/null | grep -qi '^nvidia-'; then echo "CUDA packages were installed: expected the CPU build of torch" >&2; exit 1; fi
	touch $@

# Resolve pyproject.toml's ranges again from today's releases, into the lock (docs/dependencies.md, Upgrading dependencies).
# The lock is for the platform every install path runs on: CPython 3.11 on Linux x86_64 (the python:3.11-slim
# image included). uv needs a place that holds torch's CPU build, as pip does.
lock: | $(VENV)/.installed
	$(VENV)/bin/uv pip compile $(LOCK_INPUTS) $(TORCH_SOURCE) --upgrade --output-file $(LOCK)

# Fails when pyproject.toml and the lock disagree: the same resolution, preferring the lock's versions, must
# give the lock's pins back unchanged (uv's equivalent of `pip-compile --dry-run`). Only the pins are compared:
# a file uploaded later for a locked version (a new platform's wheel) adds a hash, and is no disagreement.
lock-check: | $(VENV)/.installed
	@cp $(LOCK) $(VENV)/lock-check.txt
	@$(VENV)/bin/uv pip compile --quiet $(LOCK_INPUTS) $(TORCH_SOURCE) --output-file $(VENV)/lock-check.txt
	@if ! diff -u <(grep -E '^[A-Za-z0-9]' $(LOCK)) <(grep -E '^[A-Za-z0-9]' $(VENV)/lock-check.txt); then \
	  echo "$(LOCK) does not match pyproject.toml: run 'make lock', then 'make test', and commit both." >&2; exit 1; \
	fi
	@echo "$(LOCK) matches pyproject.toml"

serve: setup
	$(VENV)/bin/rag serve

test: setup eval-data test-deps
	$(PY) -m pytest

# The unit tier alone (tests/unit: no model, store, server or browser; fakes behind the ports): seconds.
test-fast: setup
	$(PY) -m pytest -q tests/unit

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
	bash data/eval/tech/fetch.sh

# The quick smoke set (every retrieval mode), then the three hard sets on one split: the shipped default
# (adaptive), the previous default (hybrid) and dense, beside the plain recipe, overall and per kind of question.
eval: setup eval-data
	$(VENV)/bin/rag eval data/eval/docs data/eval/questions.jsonl --out data/eval/results/smoke

SPLIT ?= test
SET_MODES ?= dense,hybrid,adaptive
eval-sets: setup eval-data
	for set in faq tech pdf; do \
	  $(VENV)/bin/rag eval data/eval/$$set/docs data/eval/$$set/questions.jsonl --split $(SPLIT) --mode $(SET_MODES) \
	    --out data/eval/results/$$set-$(SPLIT) || exit 1; \
	done

# The settings reference in docs/configuration.md and .env.example, from rag/settings/groups.py (a unit test fails
# when they drift).
settings-docs: setup
	$(PY) -m rag.settings.reference --write

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or anchor fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-ingest: setup
	$(PY) bench/ingest_throughput.py $(FOLDER)

# The CPU stack in Docker, for real (compose.cpu.yaml): the engine started if none answers, local stand-in
# images made where no registry can be reached, the images built, the stack up and healthy
# (deploy/compose-cpu.sh). `make compose-cpu-down ARGS=-v` also removes its volumes.
compose-cpu:
	bash deploy/compose-cpu.sh up

# The engine and the images only, without starting the stack (.ci/run starts it in the background).
compose-cpu-build:
	bash deploy/compose-cpu.sh build

compose-cpu-down:
	bash deploy/compose-cpu.sh down $(ARGS)
