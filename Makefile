# make run: serve the demo policy on 127.0.0.1:8000 (SQLite file orgguard.db)
# and print a fresh seller-admin API key for it (also in ./demo-admin.key).
# make test: the whole test suite, on SQLite and on PostgreSQL.  make check: lint, types, then tests.
# make bench: the performance figures of bench/README.md (about 10 minutes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint bench bench-replicas clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/orgguard serve --demo-key

# The suite runs twice: on SQLite, then on PostgreSQL (ORGGUARD_TEST_POSTGRES,
# default the local server; without one that pass says loudly it did not run).
test: $(STAMP)
	$(BIN)/pytest
	$(BIN)/python -m tests.databases

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

# make bench [BENCH_ARGS="--sizes 1000,10000 --seconds 5"]: see bench/README.md
bench: $(STAMP)
	$(BIN)/python -m bench.run --out docs/benchmarks-latest.md $(BENCH_ARGS)

# Write-to-visible delay between two replicas on PostgreSQL (about a minute).
bench-replicas: $(STAMP)
	$(BIN)/python -m bench.propagation --out docs/propagation-latest.md

clean:
	rm -rf $(VENV) orgguard.db orgguard.db-wal orgguard.db-shm demo-admin.key
