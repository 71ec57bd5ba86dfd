# Two entry points: `make run` (the main job) and `make test` (the whole suite).
# Both create .venv when missing and install everything the project needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.automl-meta-installed

.PHONY: run test docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The exact CPU build first: a range would let pip fetch a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,higher,docs,corpus,studies]"
	touch $(STAMP)

# Tune gradient boosting on a dataset the knowledge base never saw, warm-started and with TPE side by side.
run: $(STAMP)
	$(VENV)/bin/automl-meta tune --data examples/mroz.csv --target work \
		--estimator HistGradientBoostingClassifier --trials 15 --jobs 2 --compare --plot runs/tune-mroz.png

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 --dist worksteal -q
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site build *.egg-info
