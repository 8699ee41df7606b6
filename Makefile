# leasehold — set-up and checks. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-scale verify fuzz lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,lint,server]'
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/leasehold demo

# pytest-xdist: TEST_WORKERS processes (more than the cores: while one worker waits on a server or
# a subprocess another computes), each taking whole files in the order tests/conftest.py gives;
# the racing tests of each group take a lock, so they run one at a time. TEST_WORKERS=0: one process.
# Only the pytest plugins the suite uses are loaded: with every installed one, pytest rewrites the
# asserts of each module of their packages (schemathesis, anyio: ~270) in every worker, 10 s of
# CPU each where bytecode is not written (PYTHONDONTWRITEBYTECODE).
TEST_WORKERS ?= 4
TEST_PLUGINS := -p xdist -p timeout -p hypothesispytest
test: $(STAMP)
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(TEST_PLUGINS) \
		-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The CLI fuzz run: FUZZ_EXAMPLES inputs on SQLite and as many on PostgreSQL (exit 70 fails it).
FUZZ_EXAMPLES ?= 30000
fuzz: $(STAMP)
	LEASEHOLD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) LEASEHOLD_REQUIRE_PG=1 $(BIN)/python -m pytest -q -s \
		-p no:cacheprovider tests/test_fuzz.py
	# schemathesis against the served API's /openapi.json, 200 examples per operation
	LEASEHOLD_API_FUZZ_EXAMPLES=200 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_api_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,lint,server,bench]'
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/run.py

# Record >= 1,000 histories (API and CLI, SQLite and PostgreSQL, with faults), check each for
# linearizability, self-test the checker; writes benchmarks/VERIFY.md (6 minutes quiet, 30 loaded).
verify: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m verify.run

bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/run.py scale

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks verify
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache
