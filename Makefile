# Two commands on a fresh machine: `make book` (main job) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MATHJAX := _static/mathjax/tex-svg.js

.PHONY: setup book lab chromium site-check screenshot evaluate verify units stages test test-fast zoo benchmark clean

# The exact versions of requirements.lock first, then the package itself without resolving anything
# (--no-deps; the lock has setuptools, so no build environment is fetched either): CI gets exactly
# the pinned set. pyproject.toml's ranges are for installs elsewhere (pip install fkd-*.whl).
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e '.[book,test,onnx,gurobi]'
	$(PY) -m pip check
	touch $@

setup: $(VENV)/.installed

# Main job: the book, built from the shipped zoo and results on the quick profile. jupyter-book
# executes every chapter (cached in _build/.jupyter_cache; the chapters' own runs resume from
# _build/reproduce) and writes the site to _build/html (open _build/html/index.html).
book: setup $(MATHJAX)
	$(VENV)/bin/jupyter-book build . -W --keep-going

# MathJax from the npm registry into _static/ (git-ignored): the built book renders its equations
# offline (sphinx would load MathJax from a CDN). Without npm the equations stay as TeX source.
$(MATHJAX):
	@if command -v npm >/dev/null; then \
	  mkdir -p _build/npm _static/mathjax && cd _build/npm && npm pack mathjax@3.2.2 --silent >/dev/null && \
	  tar xzf mathjax-3.2.2.tgz package/es5/tex-svg.js && cp package/es5/tex-svg.js ../../$(MATHJAX); \
	else echo "npm not found: the book's equations will show as TeX (MathJax cannot be fetched offline)"; fi

# Explore in Jupyter: JupyterLab (not needed by the build or the tests) on the book's notebooks.
lab: setup
	$(PY) -m pip install --quiet jupyterlab==4.6.6
	$(VENV)/bin/jupyter lab book/

# The rendered book checked in headless Chromium (Debian's chromium, installed here if missing).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

site-check: book chromium
	$(PY) -m pytest -q -m site tests/test_site.py

# The README's picture of the Motivation page, as headless Chromium shows it.
screenshot: book chromium
	$(PY) -c "from fkd.book.site import screenshot; screenshot('_build/html/book/motivation.html', 'book/_static/motivation-page.png')"

# Full-profile evaluation of the shipped zoo (the paper's 1000/1000/100 images) into results/empirical.
evaluate: setup
	for d in mnist fashion-mnist cifar10; do \
	  $(PY) -m fkd evaluate --dataset $$d --agreement-attack flip,paper --workers 2 --quiet --out results/empirical/$$d || exit 1; \
	done

# Certified bounds (Table 2, Figures 2 and 3) at the paper's protocol (1000 / 1000 / 100 images) into
# results/certified: LP bounds for the MLPs (Gurobi), CROWN for CIFAR-10 (its LPs exceed Gurobi's pip
# licence and take HiGHS ~10 s each image and student). Each run starts from the published rows
# (--restore: nothing published is recomputed) and grows in steps of 100 images, exporting after
# each, so an interrupted run loses at most one step's unfinished tasks. The run directories (the
# checkpoints) live outside the work tree, in $(RUNS); run it again after a kill to resume.
RUNS ?= $(HOME)/.cache/fkd/runs
verify: setup
	for d in mnist fashion-mnist; do for n in 100 200 300 400 500 600 700 800 900 1000; do \
	  $(PY) -m fkd verify --dataset $$d --n-images $$n --method lp --workers 2 --threads 1 --quiet \
	    --restore results/certified/$$d --out $(RUNS)/certified/$$d --export results/certified/$$d || exit 1; \
	done; done
	$(PY) -m fkd verify --dataset cifar10 --n-images 100 --method crown --students sd,ard,rslad,fd,fd-a0.5,fd-a0.75 \
	  --workers 2 --threads 1 --quiet --restore results/certified/cifar10 --out $(RUNS)/certified/cifar10 \
	  --export results/certified/cifar10
	$(PY) -m fkd stages --csv results/stages.csv

# The run record and total wall time of every stage of the reproduction (zoo and results/).
stages: setup
	$(PY) -m fkd stages --csv results/stages.csv

# The behaviour tests, every book chapter executed on the quick profile against the shipped zoo
# (nbval), then the book built and every chapter page checked in headless Chromium (installed first:
# the audit report's test opens its page in it too).
test: setup chromium
	$(PY) -m pytest -q
	$(PY) -m pytest -q --nbval-lax book/
	$(MAKE) site-check

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not site"

# Retrain the whole zoo at the full profile with eps in normalised units (the paper's reading), behind
# the normalisation (train's default for that reading), into zoo/ (hours on a CPU; resumable: run it
# again after a kill). Teachers first: every student distils
# its dataset's zoo teacher of the same reading. The pixel-unit zoo in zoo/pixel is the earlier one
# (`--eps-units pixel` retrains it). --force: replace the shipped models (a finished run resumes at its
# end from its checkpoint, so a rerun after a kill costs nothing for the models already done).
zoo: setup
	for d in mnist fashion-mnist cifar10; do \
	  for m in rt sd ard rslad fd; do $(PY) -m fkd train --dataset $$d --method $$m --eps-units normalised --threads 1 --quiet --force || exit 1; done; \
	done
	for a in 0.5 0.75; do $(PY) -m fkd train --dataset cifar10 --method fd --alpha $$a --eps-units normalised --threads 1 --quiet --force || exit 1; done
	for d in mnist fashion-mnist; do for m in kdiga tfkd fdboth; do \
	  $(PY) -m fkd train --dataset $$d --method $$m --eps-units normalised --threads 1 --quiet --force || exit 1; done; done

# The runs of the readings a dataset does not publish (results/units; fkd.paths.reading_runs): both
# datasets' zoo trained on [0, 1] inputs (results/units/zoo-normalised). Table 1 on the paper's 1000
# images, then Table 2 grown in steps of 100 images (LP bounds; resumable from $(RUNS)/units, outside
# the tree). The pixel zoo's runs are in results/pixel (their commands: `--eps-units pixel`).
UNITS_IMAGES ?= 100 200
units: setup
	for d in mnist fashion-mnist; do \
	  FKD_ZOO=results/units/zoo-normalised $(PY) -m fkd evaluate --dataset $$d --eps-units normalised --workers 2 --threads 1 --quiet \
	    --out $(RUNS)/units/$$d/empirical --export results/units/$$d/empirical || exit 1; \
	  for n in $(UNITS_IMAGES); do FKD_ZOO=results/units/zoo-normalised $(PY) -m fkd verify --dataset $$d --eps-units normalised \
	    --n-images $$n --method lp --workers 2 --threads 1 --quiet --out $(RUNS)/units/$$d/certified \
	    --export results/units/$$d/certified || exit 1; done; \
	done

benchmark: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/verify.py --eps 0.025 0.05 0.1 0.15 0.2 --n-solver-images 1
	$(PY) benchmarks/faithub_floor.py --eps 0.025 0.05 0.1 0.15 0.2

clean:
	rm -rf $(VENV) _build .pytest_cache
