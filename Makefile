# One virtualenv (.venv) for everything; every target creates it when missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: install demo test browser bench-ci check lint types format clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The demo hierarchy: top node 88 on :8000, secondary nodes 88.100-88.102 on :8001-8003,
# an enterprise node 88.101.1 on :8010, sample identifiers; Ctrl-C stops it all.
# e.g. make demo DEMO_ARGS="--data-dir .idnode/demo --random-secrets"
demo: install
	$(BIN)/idnode up $(DEMO_ARGS)

test: install browser
	$(BIN)/python -m pytest

# Debian's Chromium (and a CJK font for the seed plans' quotes), for the status-page
# test; installed once, skipped with a note where there is no apt-get.
browser:
	@command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	  else echo "no apt-get: the status-page test needs chromium on PATH"; fi; }

# The CI benchmark (about 70 s): the demo hierarchy under a day-shaped resolution load;
# fails unless every secondary node sustains the Wuhan plan's 600,000 resolutions/day
# with fewer than 0.1% failures. The report lands in reports/<timestamp>/.
bench-ci: install
	$(BIN)/idnode bench --up --scenario resolve --duration 40 --users 12

check: lint types

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .idnode .mypy_cache .ruff_cache .pytest_cache *.egg-info
