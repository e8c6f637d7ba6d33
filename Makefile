# Two commands on a fresh machine: `make demo` (run the default experiment) and `make test`.
# Both create .venv with Python 3.12 (or newer) and install the package with its dev extras.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench browser clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: Python >= 3.12 not found; install it (e.g. pyenv install 3.12) or pass PYTHON=/path/to/python3.12"; exit 1; fi
	@if [ ! -x $(VENV)/bin/python ] || ! $(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/uplift $(ARGS)

# the suite runs on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time so
# module fixtures are built once; TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest $(XDIST) --durations=15 -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench notebooks
	$(VENV)/bin/ruff format --check src tests bench notebooks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python bench/backends.py
	$(VENV)/bin/python bench/fit_scaling.py

# Debian's Chromium for the report.html browser test (tests/test_report_browser.py), which
# Playwright drives as installed; `playwright install` is never run
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }
	@command -v chromium

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
