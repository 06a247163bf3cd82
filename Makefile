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

.PHONY: quick test unit setup setup-test
setup:
	scripts/bootstrap.sh core
setup-test:
	scripts/bootstrap.sh test

quick: setup
	$(VENV)/bin/workbench eval --model smollm2-135m --suite quick

test: setup-test
	$(VENV)/bin/python -m pytest tests -m "slow or not slow"

unit: setup-test
	$(VENV)/bin/python -m pytest tests -m "not slow"
