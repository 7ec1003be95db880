# tcrp_lab — two commands for a newcomer:
#   make lab    set everything up and open JupyterLab on the lessons (the student edition)
#   make test   set everything up and run every test (unit, property, server, browser, notebooks)
# Both create ./.venv unless a virtual environment is already active.
# Lessons: notebooks/solutions/ is the instructor edition (the source); notebooks/NN_*.ipynb, the
# student edition, is generated from it by `make editions` and never edited by hand.

PYTHON ?= python3
VENV ?= .venv
ifdef VIRTUAL_ENV
  BIN := $(VIRTUAL_ENV)/bin
else
  BIN := $(VENV)/bin
endif
STAMP := $(BIN)/.tcrp_lab-installed
NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=120 --nbval-sanitize-with notebooks/sanitize.cfg

.PHONY: lab chat test test-fast test-container editions install system-deps server bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	@touch $@

install: $(STAMP)

# Debian packages the browser test needs (Chromium; Playwright never downloads a browser here).
system-deps:
	@bash scripts/install-system-deps.sh

# Opens the student edition on lesson 00 (worked answers one folder away, in solutions/) through
# `tcrp-lab lab`: no news toast or update check (an overrides.json in a per-run settings folder, as
# the image has), --allow-root only when run as root (e.g. in a container).
LAB_ARGS ?=

lab: install
	$(BIN)/python -m tcrp_lab lab notebooks $(LAB_ARGS)

# The standalone chat page (Voilà) on http://127.0.0.1:8866.
chat: install
	$(BIN)/python -m tcrp_lab chat

# nbval strict on the instructor edition; tests/test_editions.py checks the student edition is up
# to date, answer-free, and runs with each exercise's checker saying "not yet".
test: install system-deps
	$(BIN)/python -m pytest tests notebooks/solutions $(NBVAL)

# The same without the browser and notebooks, for a quick loop while editing.
test-fast: install
	$(BIN)/python -m pytest tests -m "not browser and not notebook and not wheel" -x -q

# Regenerate the student edition (notebooks/NN_*.ipynb) from notebooks/solutions/ after editing a lesson.
editions: install
	$(BIN)/python -m tcrp_lab.editions

# Build the Dockerfile with podman on a local stand-in base image and check it (issue: delivery).
test-container:
	bash scripts/container-check.sh

server: install
	$(BIN)/python -m tcrp_lab.server

bench: install
	$(BIN)/python -m tcrp_lab.bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-output
