# kws: `make quickstart` runs the main job, `make test` the test suite. Both set up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kws-setup-stamp
TORCH_VERSION ?= 2.13.0
# Empty: pip's configured index (PyPI serves Linux a CUDA build). A CPU-only machine without a
# local CPU wheel: make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
APT_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
                sox libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils g++

.PHONY: setup quickstart test lint format bench clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	  fi; \
	else echo "apt-get not found: install espeak-ng, flite, festival, sox, libportaudio2 yourself"; fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# The exact torch first, so a machine with a local CPU wheel takes it, not a CUDA build.
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -q -e '.[all]'
	@touch $(STAMP)

quickstart: setup
	$(VENV)/bin/kws quickstart

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check kws tests benchmarks && $(VENV)/bin/ruff format --check kws tests benchmarks

format: setup
	$(VENV)/bin/ruff format kws tests benchmarks && $(VENV)/bin/ruff check --fix kws tests benchmarks

bench: setup
	$(PY) benchmarks/features.py && $(PY) benchmarks/train_cpu.py
