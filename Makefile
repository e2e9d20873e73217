# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint types unit bench clean help

help:
	@echo "make demo   run the whole pipeline on sample data (local folder + SQLite + Parquet)"
	@echo "make test   lint, types and the whole test suite (starts its own AWS emulator)"
	@echo "make bench  benchmarks against the pandas reference and a Polars floor"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf salesflow-demo
	$(BIN)/salesflow demo --data-dir salesflow-demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: lint types
	$(BIN)/pytest -q -n 2 --dist loadfile --cov=salesflow --cov-report=term --cov-fail-under=90

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) salesflow-demo .pytest_cache .mypy_cache .ruff_cache .coverage*
