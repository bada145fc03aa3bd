# Two commands are the whole setup on a machine with only Python 3.11+:
#   make demo   the embedded stack (real Temporal dev server + UI, sandbox providers, worker) runs recipes
#   make test   lint, types and the whole test suite
# Each target creates or refreshes the virtual environment from uv.lock by itself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The stamp follows the lock, the project and this file (how the sync is done, e.g. bytecode).
SYNCED := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml Makefile 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: venv test lint demo dev chaos bench bench-peers replay-record schema clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(SYNCED): $(BIN)/uv pyproject.toml uv.lock Makefile
	$(BIN)/uv sync --locked --python $(BIN)/python --quiet --compile-bytecode
	rm -f $(VENV)/.synced-*
	touch $@

venv: $(SYNCED)

lint: venv
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

demo: venv
	$(BIN)/tikflow demo

dev: venv
	$(BIN)/tikflow dev

chaos: venv
	TIKFLOW_CHAOS_FULL=1 $(BIN)/pytest -m chaos

bench: venv
	$(BIN)/python -m bench

# The peer measured beside tikflow (never in CI): n8n and the Node.js 24 it needs, from npm, into
# .peers/ (ignored); then `python -m bench.n8n [--quick]` runs the monitors' job on it.
bench-peers: venv
	bash bench/peers/install_n8n.sh

replay-record: venv
	$(BIN)/python -m tests.replay.record

schema: venv
	$(BIN)/tikflow schema > definitions/recipe.schema.json

clean:
	rm -rf $(VENV) .tikflow .mypy_cache .ruff_cache .pytest_cache
