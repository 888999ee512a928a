# One virtualenv (.venv) for everything; every target creates it when missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: install demo docs test browser compose-tool bench-tools bench-capacity bench-batch-cost bench-storage bench-attacks bench-ci check lint types format clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# $(call apt_install,PACKAGES,WHO NEEDS THEM): Debian packages, for a tool a target needs
# and did not find; where there is no apt-get, a note instead (no commas in either).
define apt_install
if command -v apt-get >/dev/null; then \
  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
  $$SUDO apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(1) >/dev/null; \
else echo "no apt-get: $(2)"; fi
endef

# The demo hierarchy: top node 88 on :8000, secondary nodes 88.100-88.102 on :8001-8003,
# an enterprise node 88.101.1 on :8010, sample identifiers; Ctrl-C stops it all.
# e.g. make demo DEMO_ARGS="--data-dir .idnode/demo --random-secrets"
demo: install
	$(BIN)/idnode up $(DEMO_ARGS)

# The suite on every core (pytest-xdist); each worker starts its own Redis and cluster.
test: install browser compose-tool bench-tools
	$(BIN)/python -m pytest -n auto

# Debian's Chromium (and a CJK font for the seed plans' quotes), for the status-page
# test; installed once, skipped with a note where there is no apt-get.
browser:
	@command -v chromium >/dev/null || { $(call apt_install,chromium fonts-wqy-zenhei,the status-page test needs chromium on PATH); }

# Debian's docker-compose (1.29), which validates compose.yaml without a Docker engine
# (tests/containers); installed once, skipped with a note where there is no apt-get.
compose-tool:
	@command -v docker-compose >/dev/null || { $(call apt_install,docker-compose,the compose test needs docker-compose on PATH); }

# Debian's wrk (the closed-loop load generator) and nginx (the static baseline) for
# `idnode bench --capacity`; installed once, skipped with a note where there is no apt-get.
bench-tools:
	@{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null || { $(call apt_install,wrk nginx,idnode bench --capacity needs wrk and nginx on PATH); }

# The capacity benchmark (about 2-3 minutes): maximum rates and latency of the demo
# hierarchy against nginx and a FastAPI+Redis app, in reports/<timestamp>/capacity.md.
bench-capacity: install bench-tools
	$(BIN)/idnode bench --capacity

# The batch path's instructions per identifier (about 40 s), counted by valgrind's
# cachegrind in process (python -m loadtest.batch_cost); Debian's valgrind installed once.
bench-batch-cost: install
	@command -v valgrind >/dev/null || { $(call apt_install,valgrind,make bench-batch-cost needs valgrind on PATH); }
	$(BIN)/python -m loadtest.batch_cost --instructions

# Redis memory and AOF bytes per identifier, by key family (about 2 minutes): 200,000
# demo-shaped identifiers through the batch API with every type indexed, then with the
# default indexes, side by side in reports/<timestamp>/storage.md.
bench-storage: install
	$(BIN)/python -m loadtest.storage_cost --count 200000

# What attacks cost a cached GET at the top node (about 50 s): quiet, a child sending a
# gzip bomb, a 1 GiB body or a drip, and 2000 idle connections, side by side in one run.
bench-attacks: install
	$(BIN)/python -m loadtest.under_attack

# The CI benchmark (about 70 s): the demo hierarchy under a day-shaped resolution load;
# fails unless every secondary node sustains the Wuhan plan's 600,000 resolutions/day
# with fewer than 0.1% failures. The report lands in reports/<timestamp>/.
bench-ci: install
	$(BIN)/idnode bench --up --scenario resolve --duration 40 --users 20

check: lint types

# The documentation site (docs/, mkdocs.yml) into site/, strictly: a broken link, a
# missing page or a failing hook fails the build. Open site/index.html: it works offline.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) site .idnode .mypy_cache .ruff_cache .pytest_cache *.egg-info
