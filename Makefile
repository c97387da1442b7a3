# Two commands for a fresh machine:  `make demo`  (set up, then run the whole story locally)
#                                    `make test`  (set up, then run the test suite)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench lock clean

# Python only: what `make demo` needs. Every wheel checked against the lock's hashes.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Node.js only for the test suite's Azure server (Azurite)
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NODE_STAMP)

setup: $(STAMP)

demo: setup
	$(PY) demo.py

test: setup $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 -q

lint: setup
	$(VENV)/bin/ruff check .

# Regenerate both locks, with hashes, from pyproject.toml (rerun after adding or changing a dependency;
# pins already in the locks are kept where they still fit). pip's own config is ignored (--isolated)
# so that the hashes are those of the package index, not of a local wheel folder.
LOCK := CUSTOM_COMPILE_COMMAND="make lock" PIP_FIND_LINKS= $(VENV)/bin/pip-compile --quiet --generate-hashes \
        --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --pip-args=--isolated
lock: setup
	$(LOCK) -o requirements-runtime.lock pyproject.toml
	$(LOCK) --extra test -o requirements.lock pyproject.toml

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
