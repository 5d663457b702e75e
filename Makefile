# Two entry points: `make run` (the main job) and `make test` (lint + the whole test suite).
# Both create .venv when it is missing and reinstall only when the package metadata changed;
# the Cython extension is rebuilt when its sources changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CVLAB := $(VENV)/bin/cvlab
EXT_SOURCES := $(wildcard cvlab/ext/*.pyx)

.PHONY: run test install lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the metadata changes; the stamp records what was installed.
$(VENV)/.installed: pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

$(VENV)/.ext-built: $(EXT_SOURCES) $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace
	touch $@

install: $(VENV)/.installed $(VENV)/.ext-built

run: install
	$(CVLAB) train model=bn_fc sweep=weight_scale
	$(CVLAB) plot run=latest

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(PY) -m pytest -q

clean:
	rm -rf build $(VENV) cvlab/ext/*.so cvlab/ext/*.c
