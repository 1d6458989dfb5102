# Chronogram: `make dev` runs the whole stack locally, `make test` runs what CI runs.
# Everything is installed on demand: the virtualenv (.venv, from requirements.lock; the code itself runs from the
# checkout, nothing is installed into site-packages) and the pinned servers
# (cached in ~/.cache/chronogram/tools; see devstack/tools.py).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# make dev TEMPORAL=server: the production Temporal server on PostgreSQL (and the app database on PostgreSQL).
TEMPORAL ?= dev
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install tools dev test lint format lock record-histories clean

help:
	@echo "make dev      bring up Temporal (+ Web UI), MinIO, the Graph API sandbox, the worker and the API"
	@echo "make dev TEMPORAL=server   the same on the production Temporal server and PostgreSQL (README: Production-like)"
	@echo "make test     lint, type-check and run the test suite against real servers (what CI runs)"
	@echo "make tools    build or fetch the pinned servers into the tool cache"
	@echo "make lint     ruff, mypy and the import layers only;  make format  apply ruff's fixes and formatting"
	@echo "make lock     re-resolve requirements.lock from pyproject.toml"
	@echo "make record-histories   re-record the workflow histories the replay tests replay (review the diff)"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Chronogram needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

install: $(STAMP)

tools: $(STAMP)
	$(PY) -m devstack.tools

dev: tools
	$(PY) -m devstack --temporal $(TEMPORAL)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: tools lint
	$(VENV)/bin/pytest

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

record-histories: tools
	$(PY) -m tests.replay.record

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Benchmarks on the real stack (not part of `make test`); see bench/README.md. BENCH_ARGS=--quick for a smoke run.
.PHONY: bench
bench: tools
	$(PY) -m bench $(BENCH_ARGS)
