# leasehold — set-up and checks. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench verify lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/leasehold demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/run.py

# Record >= 1,000 histories (API and CLI, SQLite and PostgreSQL, with faults), check each for
# linearizability, self-test the checker; writes benchmarks/VERIFY.md (about 30 minutes).
verify: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m verify.run

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks verify
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache
