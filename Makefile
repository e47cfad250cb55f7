# Two commands a user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is only used to read original .pt files and in parity tests: the CPU build is enough
# (the default build from the package index is the CUDA one, several GB on Linux). Its wheel
# index first; when that is unreachable (an offline mirror, a proxy), the package index.
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_TIMEOUT ?= 15

.PHONY: venv torch test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	$(MAKE) --no-print-directory torch
	$(PY) -m pip install -e '.[test,torch]'
	touch $(STAMP)

venv: $(STAMP)

# The CPU build of torch into the venv (tests/test_makefile.py runs both paths with a stand-in).
torch:
	$(PY) -m pip install --timeout $(PIP_TIMEOUT) --retries 1 --index-url $(TORCH_INDEX) \
	    '$(TORCH)' || { echo "torch: $(TORCH_INDEX) failed; using the package index"; \
	    $(PY) -m pip install '$(TORCH)'; }

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

demo: $(STAMP)
	$(PY) -m nepa3d_jax.main --config configs/demo.py

clean:
	rm -rf $(VENV) runs/demo
