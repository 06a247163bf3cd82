# The two commands a new machine needs (see README.md):
#   make quick   evaluate the embedded default model on the quick suite of real benchmarks
#   make test    run the test suite (unit + slow real-model tests)
SHELL := /bin/bash
VENV ?= .venv
DATA ?= $(abspath ../shared/benchmark-data)
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WORKBENCH_DATA_DIR ?= $(DATA)

.PHONY: quick test unit lint setup setup-test
setup:
	scripts/bootstrap.sh core
setup-test:
	scripts/bootstrap.sh test

quick: setup
	$(VENV)/bin/workbench eval --model smollm2-135m --suite quick

test: setup-test lint
	$(VENV)/bin/python -m pytest tests -m "slow or not slow" --durations=25

# Style and architecture: ruff (lint + import order) and the import-linter layer contracts (pyproject.toml).
lint: setup-test
	$(VENV)/bin/ruff check workbench tests scripts benchmarks dashboards
	$(VENV)/bin/lint-imports

unit: setup-test
	$(VENV)/bin/python -m pytest tests -m "not slow"
