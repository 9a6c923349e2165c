# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make run    create .venv, install, store a baseline run of the tablet line, serve the dashboard
#   make test   create .venv with the test extras, run the whole suite
#   make test-fast   the quick check of an install: every command once (tests marked `fast`, under 2 minutes)
#   make docs   build the documentation site into site/ (MkDocs, --strict: a broken link or anchor fails)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench clean browser docs interop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

STORE ?= twin-runs
HOST ?= 127.0.0.1
PORT ?= 8050

run: $(STAMP)
	$(BIN)/twin sweep osd-tablet --replications 10 --workers 0 --store $(STORE)  # the baseline, unless stored
	$(BIN)/twin dashboard --store $(STORE) --host $(HOST) --port $(PORT)

# Browser tests drive Debian's chromium through chromedriver; install them once on a fresh machine.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; }

# The OPC-UA interop tests' second stack, node-opcua, as pinned by tests/interop/package-lock.json; Debian's
# nodejs and npm are installed once if missing (the tests are skipped, saying why, if that fails).
interop:
	@command -v npm >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y nodejs npm >/dev/null || true; }; \
	command -v npm >/dev/null || { echo "npm not found: the node-opcua interop tests will be skipped"; exit 0; }; \
	[ tests/interop/node_modules/.package-lock.json -nt tests/interop/package-lock.json ] || \
		(cd tests/interop && npm ci --no-audit --no-fund) || echo "npm ci failed: the node-opcua interop tests will be skipped"

# The suite runs in up to 4 worker processes (pytest-xdist), two per core: many tests wait on servers and
# browsers (4 workers on 2 cores: 14 min 46 s against 15 min 55 s with 2). JOBS=1 runs it in one process.
# Each file runs on one worker (its shared fixtures built once), files with slow tests first (tests/conftest.py).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); n=$$((2 * n)); [ $$n -gt 4 ] && n=4; echo $$n)

# The repository's modules are compiled to bytecode first (0.3 s): every `twin` process a test starts reads it
# instead of compiling what it imports, also where PYTHONDONTWRITEBYTECODE=1 (as on the shared 2-core machine).
test: $(STAMP) browser interop
	$(BIN)/ruff check .
	$(BIN)/python -m compileall -q -x node_modules twin connectors optimizers dashboards plant_models tests
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile --no-loadscope-reorder --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m fast

DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) build site *.egg-info
