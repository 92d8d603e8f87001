# relevo — `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck unit bench-ingest bench-load redis-server chromium clean

run: $(STAMP)
	$(BIN)/relevo serve --demo-catalog

test: $(DEV_STAMP) redis-server chromium lint typecheck
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/pytest tests/unit tests/contracts -m "not redis" -k embedded -q

bench-ingest: $(DEV_STAMP) redis-server
	$(BIN)/python -m bench.ingest

# Open-loop load: decisions and events on Redis, 1 and 2 API processes (~6 min; ARGS=--quick).
bench-load: $(DEV_STAMP) redis-server
	$(BIN)/python -m bench.load $(ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

# The Redis tests start their own redis-server; this makes sure the binary exists.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (sudo apt-get install redis-server, or brew install redis) and run make test again" >&2; \
	    exit 1; \
	  fi; \
	}

# The JS SDK's browser test drives Debian's Chromium (Playwright never downloads a browser).
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "/usr/bin/chromium is missing: the browser test will be skipped (sudo apt-get install chromium)" >&2; \
	  fi; \
	}

clean:
	rm -rf $(VENV) relevo-data .pytest_cache .mypy_cache .ruff_cache
