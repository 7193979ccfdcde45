# Throughline: `make run` starts the whole console on embedded defaults; `make test` runs the
# suite. Both create the virtualenv and install what they need on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
CHROMIUM := /usr/bin/chromium

.PHONY: run test setup install browser lint format check clean reset-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is not installed: browser tests will be skipped (CI fails instead)"; \
	fi

setup: install browser

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo
	@echo "  Throughline console: http://127.0.0.1:$(PORT)/  (Ctrl-C stops everything)"
	@echo
	DEMO_TRAFFIC=$${DEMO_TRAFFIC:-1} CONSOLE_PORT=$(PORT) $(VENV)/bin/honcho -f Procfile start

check: install
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py collectstatic --noinput --verbosity 0

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: setup check lint
	$(VENV)/bin/pytest

clean:
	rm -rf var/test var/broker var/staticfiles

## Forget the demo: Throughline's database and the stand-ins' saved records go together.
reset-demo:
	rm -rf var/throughline.sqlite3* var/standins var/broker
