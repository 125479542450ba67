# Two commands set everything up on a fresh machine (Python >= 3.10 and a C++ compiler):
#   make demo   # builds, then runs the main job on the embedded digits dataset
#   make test   # builds, then runs the test suite
# Both create .venv (torch $(TORCH_SPEC) first, then rethink built against it).
#   make data        # Fashion-MNIST (real images) from the system's package manager
#   make cuda-check  # builds the CUDA kernels against a CUDA build of torch and imports them
#   make bench       # the benchmarks (figures in BENCHMARKS.md)

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
DEPS := numpy tqdm matplotlib scikit-learn pytest hypothesis pybind11 ninja submitit
SOURCES := setup.py pyproject.toml $(shell find csrc -type f 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# The CUDA check: a CUDA build of torch and the toolkit whose nvcc compiles the kernels.
CUDA_VENV ?= .venv-cu130
CUDA_TORCH_SPEC ?= torch==2.14.1
# setup.py finds the CUDA toolkit (CUDA_HOME, else nvcc on PATH, else /usr/local/cuda*).

.PHONY: install demo test data cuda-check bench lint clean

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q $(DEPS)
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	MAX_JOBS=$${MAX_JOBS:-2} $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

install: $(VENV)/.built

demo: $(VENV)/.built
	$(VENV)/bin/rethink randomization-test --out-dir results/

test: $(VENV)/.built
	$(PY) -m pytest -q

data:
	@if [ -f $(FASHION) ]; then echo "Fashion-MNIST is installed in $$(dirname $(FASHION))"; \
	elif command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else echo "no apt-get here: put Fashion-MNIST's four IDX files under ./data (README, 'Real images')"; exit 1; fi

$(CUDA_VENV)/.deps:
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(CUDA_VENV)/bin/python -m pip install -q "$(CUDA_TORCH_SPEC)"
	$(CUDA_VENV)/bin/python -m pip install -q numpy tqdm matplotlib scikit-learn pybind11 ninja
	touch $@

# Builds into build-cu130/ (never over the in-place CPU build) with RETHINK_CUDA=1, so a .cu
# file that does not compile fails here; then imports the built package and checks that it
# holds CUDA kernels (no GPU is needed for either).
cuda-check: $(CUDA_VENV)/.deps
	RETHINK_CUDA=1 MAX_JOBS=$${MAX_JOBS:-2} \
		$(CUDA_VENV)/bin/python setup.py -q build --build-base build-cu130
	cd build-cu130/lib* && ../../$(CUDA_VENV)/bin/python -c \
		"import rethink, json; i = rethink.build_info(); print(json.dumps(i)); assert i['cuda_kernels'], i"

bench: $(VENV)/.built
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

lint: $(VENV)/.built
	$(PY) -m pip install -q ruff
	$(VENV)/bin/ruff check rethink tests benchmarks scripts noxfile.py setup.py

clean:
	rm -rf build build-cu130 rethink/_C*.so $(VENV)/.built
