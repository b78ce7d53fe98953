# Two commands on a fresh machine: `make book` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup book test test-fast zoo-list benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	touch $@

setup: $(VENV)/.installed

# Main job. Until the book lands (issue 5) it is a quick evaluation of the shipped zoo:
# every model's clean test accuracy recomputed, and its PGD robust accuracy at the training eps.
book: setup
	$(PY) -m fkd zoo --evaluate

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

benchmark: setup
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) _build .pytest_cache
