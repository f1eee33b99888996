# klerk: two commands do everything on a fresh machine.
#   make demo   set up, start the demo app, run the sample tasks, stop the app
#   make test   set up, run the checks and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_WORKERS ?= 2

.PHONY: demo test setup browser check lint types imports schemas bench clean

setup: $(STAMP) browser

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Playwright's own Chromium where it is installed or can be installed; else the system's;
# else (root with apt-get) Debian's chromium; else a message saying what to install.
# Xvfb too (root with apt-get): the screen of `klerk record` on a server without one.
browser: $(STAMP)
	$(VENV)/bin/klerk browser --install
	@command -v Xvfb >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb; } || \
	  echo "no Xvfb: klerk record needs a screen, or --headless (Debian: apt-get install xvfb)"

demo: setup
	$(VENV)/bin/klerk demo

imports: $(STAMP)
	$(VENV)/bin/lint-imports

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

check: imports lint types

test: setup check
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; \
	exit $$rc

schemas: $(STAMP)
	$(VENV)/bin/klerk schema > schemas/task.schema.json
	$(VENV)/bin/klerk schema --apps > schemas/app.schema.json
	$(VENV)/bin/klerk schema --schedules > schemas/schedule.schema.json

bench: setup
	$(PY) bench/overhead.py
	$(PY) bench/audit.py

clean:
	rm -rf $(VENV) var runs exports .mypy_cache .ruff_cache
