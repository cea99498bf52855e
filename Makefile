# tingxie: `make demo`, `make serve`, `make test`. Everything runs from a local virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AUDIO ?= ../shared/speech/en/OSR_us_000_0034_8k.wav
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns about every configured index directory that lacks a package; those lines say nothing useful.
PIP_FILTER := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup demo serve test lint bench migrate clean

setup: $(VENV)/.installed

# torch is installed first and alone: `torch==2.13.0` resolves to the local CPU build, while letting
# another package pull it in would fetch the multi-gigabyte CUDA wheels.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip $(PIP_FILTER)
	$(BIN)/pip install --quiet torch==2.13.0 $(PIP_FILTER)
	$(BIN)/pip install --quiet -e '.[dev]' $(PIP_FILTER)
	touch $@

demo: setup
	$(BIN)/tingxie demo "$(AUDIO)"

serve: setup
	$(BIN)/tingxie serve

migrate: setup
	$(BIN)/tingxie migrate

test: setup
	bash deploy/local-services.sh
	bash deploy/browser-deps.sh
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/prep.py
	$(BIN)/python bench/accuracy.py

clean:
	rm -rf $(VENV) .tingxie .pytest_cache .mypy_cache .ruff_cache
