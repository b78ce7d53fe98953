# Two commands on a fresh machine: `make book` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup book evaluate verify test test-fast zoo benchmark clean

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
	for d in mnist fashion-mnist; do \
	  $(PY) -m fkd verify --dataset $$d --n-images 20 --method lp --workers 2 --threads 1 --quiet \
	    --out _build/results/quick/certified-$$d || exit 1; \
	done
	$(PY) -m fkd verify --dataset cifar10 --n-images 20 --method crown --workers 2 --threads 1 --quiet \
	  --out _build/results/quick/certified-cifar10

# Full-profile evaluation of the shipped zoo (the paper's 1000/1000/100 images) into results/empirical.
evaluate: setup
	for d in mnist fashion-mnist cifar10; do \
	  $(PY) -m fkd evaluate --dataset $$d --workers 2 --quiet --out results/empirical/$$d || exit 1; \
	done

# Certified bounds (Table 2, Figures 2 and 3) as published in results/certified: LP bounds for the
# MLPs (Gurobi), CROWN for CIFAR-10 (its LPs exceed Gurobi's pip licence and take HiGHS ~10 s each
# image and student). First 200 / 100 / 100 images; resumable; raise --n-images to grow a run.
verify: setup
	$(PY) -m fkd verify --dataset mnist --n-images 200 --method lp --workers 2 --threads 1 --quiet \
	  --out _build/results/certified/mnist --export results/certified/mnist
	$(PY) -m fkd verify --dataset fashion-mnist --n-images 100 --method lp --workers 2 --threads 1 --quiet \
	  --out _build/results/certified/fashion-mnist --export results/certified/fashion-mnist
	$(PY) -m fkd verify --dataset cifar10 --n-images 100 --method crown --workers 2 --threads 1 --quiet \
	  --out _build/results/certified/cifar10 --export results/certified/cifar10

# The behaviour tests, then every book chapter executed on the quick profile against the shipped zoo (nbval).
test: setup
	$(PY) -m pytest -q
	$(PY) -m pytest -q --nbval-lax book/

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
	$(PY) benchmarks/verify.py --eps 0.025 0.05 0.1 0.15 0.2 --n-solver-images 1
	$(PY) benchmarks/faithub_floor.py --eps 0.025 0.05 0.1 0.15 0.2

clean:
	rm -rf $(VENV) _build .pytest_cache
