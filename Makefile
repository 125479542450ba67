# Two commands set everything up on a fresh machine (Python >= 3.10 and a C++ compiler):
#   make demo   # builds, then runs the main job on the embedded digits dataset
#   make test   # builds, then runs the test suite
# Both create .venv (torch $(TORCH_SPEC) first, then rethink built against it).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
SOURCES := setup.py pyproject.toml $(shell find csrc -type f 2>/dev/null)

.PHONY: install demo test bench lint clean

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q numpy tqdm matplotlib scikit-learn pytest hypothesis pybind11 ninja
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	MAX_JOBS=$${MAX_JOBS:-2} $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

install: $(VENV)/.built

demo: $(VENV)/.built
	$(VENV)/bin/rethink randomization-test --out results/

test: $(VENV)/.built
	$(PY) -m pytest -q

bench: $(VENV)/.built
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf build rethink/_C*.so $(VENV)/.built
