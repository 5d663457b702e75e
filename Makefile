# Two entry points: `make run` (the main job) and `make test` (lint + the whole test suite).
# Both create .venv when it is missing and reinstall only when the package metadata changed;
# the Cython extension is rebuilt when its sources changed. Without a C compiler the install
# still succeeds (one warning) and cvlab uses its numpy fallback.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CVLAB := $(VENV)/bin/cvlab
EXT_SOURCES := $(wildcard cvlab/ext/*.pyx)

.PHONY: run test test-slow test-portable test-cluster install lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the metadata changes; the stamp records what was installed. The build
# requirements ([build-system] in pyproject.toml: setuptools, Cython, numpy) go into the venv
# first: the install, the in-place extension build below and the packaging tests use them
# without build isolation.
READ_BUILD_REQUIRES := import importlib, sys; \
    toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "pip._vendor.tomli"); \
    print("\n".join(toml.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))

$(VENV)/.installed: pyproject.toml setup.py | $(PY)
	$(PY) -c '$(READ_BUILD_REQUIRES)' > $(VENV)/build-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/build-requirements.txt
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@

$(VENV)/.ext-built: $(EXT_SOURCES) $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace
	touch $@

install: $(VENV)/.installed $(VENV)/.ext-built

run: install
	$(CVLAB) train model=bn_fc sweep=weight_scale
	$(CVLAB) plot run=latest show_table=false

lint: install
	$(VENV)/bin/ruff check .

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test module in one of them so
# that module fixtures are built once; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: install lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow and not cluster"

# The longer tests: real CIFAR-10 runs, sweeps and reproductions interrupted and resumed.
test-slow: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "slow and not cluster" -p no:cacheprovider

# Minutes-long runs on the SLURM cluster (.ci/run starts one; they skip, saying why, without).
test-cluster: install
	$(PY) -m pytest -q -m cluster -p no:cacheprovider

# `cvlab gradcheck` (all checks), then it and the numerically sensitive tests (pytest -m numerics)
# again under other BLAS kernels and single-threaded: verdicts must not depend on CPU or threads.
PORTABLE_CONFIGS := "OPENBLAS_CORETYPE=Sandybridge MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2" \
	"OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
test-portable: install
	@set -e; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	for config in "" $(PORTABLE_CONFIGS); do \
		echo "== $${config:-default configuration}"; \
		[ -z "$$config" ] || env $$config $(PY) -m pytest -q -m numerics -p no:cacheprovider; \
		env $$config $(CVLAB) gradcheck outputs_root="$$out" > "$$out/gradcheck.txt" \
			|| { cat "$$out/gradcheck.txt"; exit 1; }; \
		tail -n 2 "$$out/gradcheck.txt"; \
	done

clean:
	rm -rf build $(VENV) cvlab/ext/*.so cvlab/ext/*.c
