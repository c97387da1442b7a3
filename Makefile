# Two commands for a fresh machine:  `make demo`  (set up, then run the whole story locally)
#                                    `make test`  (set up, then run the test suite)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	npm ci --silent --no-audit --no-fund
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) demo.py

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 -q

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
