# Two commands a user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	# CPU build of torch first (only used to read original .pt files and in parity tests).
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test,torch]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

demo: $(STAMP)
	$(PY) -m nepa3d_jax.main --config configs/demo.py

clean:
	rm -rf $(VENV) runs/demo
