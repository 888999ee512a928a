# One virtualenv (.venv) for everything; every target creates it when missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEMO_PORT ?= 8001
DEMO_SECRET ?= s3cret

.PHONY: install demo test check lint types format clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# A secondary node for prefix 88.100 on an embedded Redis (data in .idnode/).
demo: install
	$(BIN)/idnode serve --role secondary --prefix 88.100 --port $(DEMO_PORT) --admin-secret $(DEMO_SECRET)

test: install
	$(BIN)/python -m pytest

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
