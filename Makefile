# microloan — two commands on a fresh machine with Python 3.11+:
#   make run    set up and serve the platform (API, borrower pages, operator console) on the
#               embedded SQLite file, with the demo population and book loaded on first start
#   make test   set up and run the whole test suite (lint, types, tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup run test lint typecheck pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.13"
	$(BIN)/uv sync --frozen --quiet
	rm -f $(VENV)/.synced-*
	touch $@

run: setup
	$(BIN)/microloan serve

lint: setup
	$(BIN)/ruff check src tests bench

typecheck: setup
	$(BIN)/mypy src

pytest: setup
	$(BIN)/python -m pytest -q -n 2

test: lint typecheck pytest

bench: setup
	$(BIN)/python bench/quote_bench.py
	$(BIN)/python bench/draw_repay_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
