# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint types unit bench clean help chromium screenshots

help:
	@echo "make demo   run the whole pipeline on sample data (local folder + SQLite + Parquet)"
	@echo "make test   lint, types and the whole test suite (starts its own AWS emulator)"
	@echo "make bench  benchmarks against the pandas reference and a Polars floor"
	@echo "make screenshots  regenerate the dashboard screenshots in docs/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The browser tests drive Debian's Chromium (never a browser Playwright downloads).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)

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

test: lint types chromium
	$(BIN)/pytest -q -n 2 --dist loadfile --cov=salesflow --cov-report=term --cov-fail-under=90

screenshots: $(STAMP) chromium
	$(BIN)/python -m tests.browser.screenshots docs

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) salesflow-demo .pytest_cache .mypy_cache .ruff_cache .coverage*
