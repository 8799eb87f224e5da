PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test run lint check clean

$(STAMP): pyproject.toml
	@command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || { \
	  echo "error: no C++ compiler found. hashsvc depends on pdqhash, which PyPI ships only as source;"; \
	  echo "       install one first (Debian/Ubuntu: apt install g++ python3-dev)."; exit 1; }
	$(PYTHON) -c 'import sys; sys.exit("error: Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Four processes, file by file, then the tests that assert wall-clock bounds alone (tests/conftest.py). Four on a
# 2-core machine because much of the suite waits (servers starting, subprocesses, deadlines): one process kept
# 0.9 of a core busy. Measured here: 13.0 min with 2 processes, 8.7 min with 4, for the same parallel part.
test: $(STAMP)
	$(BIN)/ruff check hashsvc tests scripts
	$(BIN)/pytest -n 4 --dist loadfile -m "not serial" --durations=15; parallel=$$?; \
	  $(BIN)/pytest -p no:xdist -m serial --durations=5 && exit $$parallel

# Serve on 127.0.0.1:8080 with the embedded SQLite store in index/; the first run prints an admin key.
run: $(STAMP)
	$(BIN)/hashsvc init
	$(BIN)/hashsvc serve

lint: $(STAMP)
	$(BIN)/ruff check hashsvc tests scripts

check: test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
