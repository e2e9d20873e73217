# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Wheels of the light Lambda zip for the Lambda runtime, so the deploy tests build it offline.
WHEELS := $(VENV)/wheelhouse/.filled
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

$(WHEELS): $(STAMP)
	$(BIN)/salesflow aws wheels --out $(VENV)/wheelhouse --lambda-only \
		--python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') --python 3.12
	touch $(WHEELS)

demo: $(STAMP)
	rm -rf salesflow-demo
	$(BIN)/salesflow demo --data-dir salesflow-demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

types: $(STAMP)
	$(BIN)/mypy

unit: $(WHEELS)
	$(BIN)/pytest tests/unit -q

test: lint types $(WHEELS)
	$(BIN)/pytest -q -n 2 --dist loadfile --cov=salesflow --cov-report=term --cov-fail-under=90

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) salesflow-demo .pytest_cache .mypy_cache .ruff_cache .coverage*
