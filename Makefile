# Two entry points: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv on first use: torch's CPU wheel first (a plain `torch` requirement would
# pull a multi-GB CUDA build), then this project with its dev extras.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/evolver train --epochs 15 --img 256 --batch 16

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.learning
	$(PY) -m benchmarks.speed
	$(PY) -m benchmarks.eval_speed

clean:
	rm -rf $(VENV) runs .pytest_cache
