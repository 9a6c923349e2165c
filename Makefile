# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make run    create .venv, install, run the flagship what-if on the built-in tablet line
#   make test   create .venv with the test extras, run the whole suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/twin run osd-tablet --replications 10
	$(BIN)/twin compare osd-tablet --replications 10 \
		-s "second coater: stations.coating.units=2" \
		-s "faster coater changeover: stations.coating.setup.*->*=4 h"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) build *.egg-info
