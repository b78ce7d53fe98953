# Two commands on a fresh machine: `make book` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup book evaluate test test-fast zoo benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	touch $@

setup: $(VENV)/.installed

# Main job. Until the book lands (issue 5): every zoo model's clean accuracy recomputed, then the
# quick-profile evaluation (Table 1, EMPLB, fidelity; first 100/100/20 images, PGD-50 x 5) of each
# dataset into _build/results/quick/<dataset> (resumable), printed beside the paper's numbers.
book: setup
	$(PY) -m fkd zoo --evaluate
	for d in mnist fashion-mnist cifar10; do \
	  $(PY) -m fkd evaluate --dataset $$d --profile quick --workers 2 --quiet --out _build/results/quick/$$d || exit 1; \
	done

# Full-profile evaluation of the shipped zoo (the paper's 1000/1000/100 images) into results/empirical.
evaluate: setup
	for d in mnist fashion-mnist cifar10; do \
	  $(PY) -m fkd evaluate --dataset $$d --workers 2 --quiet --out results/empirical/$$d || exit 1; \
	done

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Retrain the whole zoo at the full profile (hours on a CPU; resumable: run it again after a kill).
# Teachers first: every student distils its dataset's zoo teacher.
zoo: setup
	for d in mnist fashion-mnist cifar10; do \
	  for m in rt sd ard rslad fd; do $(PY) -m fkd train --dataset $$d --method $$m --threads 1 --quiet || exit 1; done; \
	done
	for a in 0.5 0.75; do $(PY) -m fkd train --dataset cifar10 --method fd --alpha $$a --threads 1 --quiet || exit 1; done

benchmark: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/evaluate.py

clean:
	rm -rf $(VENV) _build .pytest_cache
