# The two commands a new user needs: `make run` (the demo municipality on the embedded stack)
# and `make test`. Both create the virtualenv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/housing-chain demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/step_latency.py
	$(BIN)/python bench/import_rate.py

schema: $(STAMP)
	$(BIN)/housing-chain schema --output docs/import-line.schema.json

clean:
	rm -rf var .pytest_cache
