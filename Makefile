# InfrAgent — developer entry points. `make up` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export INFRAGENT_DATA_DIR ?= $(CURDIR)/.infragent

.PHONY: up test check lint typecheck layers unit install bench demo clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)  ## server + responder on the embedded SQLite store
	$(BIN)/infragent up

demo: $(STAMP)
	$(BIN)/infragent demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)  ## import-linter contracts (pyproject.toml), then no import cycle and no module over 500 lines
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check_structure.py
	$(BIN)/python scripts/check_test_names.py

check: lint typecheck layers

test: check  ## lint + type check + the whole suite (PostgreSQL at 127.0.0.1:5432)
	@# every test is independent (a PostgreSQL schema and temp dir per test, ports from the OS): two
	@# workers, a file at a time each; the whole-loop and browser tests run after the rest, so two
	@# of them (real processes, Chromium) share the machine at most, with generous bounded waits
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/unit tests/integration tests/evals
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/e2e tests/browser

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
