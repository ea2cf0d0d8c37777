# make run: serve the demo policy on 127.0.0.1:8000 (SQLite file orgguard.db)
# and print a fresh seller-admin API key for it (also in ./demo-admin.key).
# make test: the whole test suite.  make check: lint, types, then tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/orgguard serve --demo-key

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) orgguard.db orgguard.db-wal orgguard.db-shm demo-admin.key
