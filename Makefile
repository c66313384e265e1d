# The two commands of the README, `make demo` and `make test`, and `make docs`.
# Each creates .venv on first use and installs the package with its test
# extra; later runs reinstall only when setup.py or pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED = 1

.PHONY: install test test-unit typecheck demo benchmark docs notebooks tutorials format lint

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# Two pytest workers, one per core of a 2-core CI machine: most of the
# suite's time is single-threaded tracing. `--dist loadfile` keeps each test
# file (and its module-scoped fixtures) in one worker.
test: install typecheck
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# The fast loop: the suite without the tests marked slow or integration
# (training runs, subprocesses, notebooks, the docs site, the wheel).
test-unit: install
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow and not integration" tests

# The type check, configured in pyproject.toml ([tool.mypy]); `make test`
# runs it first.
typecheck: install
	$(PY) -m mypy

demo: install
	$(PY) -m tfp_emerging demo

benchmark: install
	$(PY) -m benchmarks.run

# The documentation site (docs/, mkdocs.yml) into site/, offline; --strict
# fails on any warning: a broken link or anchor, a page missing from the nav,
# a docstring the API reference cannot parse.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

# colab/<NN_name>.ipynb from the sources colab/<NN_name>.py (jupytext percent
# format). `make notebooks REPOSITORY=OWNER/NAME` first stamps that GitHub
# repository into the notebooks' install cell and README.md's Colab badges.
notebooks: install
	$(PY) colab/build.py $(if $(REPOSITORY),--repository $(REPOSITORY))

# The same, then each notebook run at full size (minutes each on 2 cores),
# its executed copy written to docs/tutorials/: the site's Tutorials.
tutorials: install
	$(PY) colab/build.py --execute

# Style, held by ruff (configured in pyproject.toml): `make format` rewrites
# the tree, `make lint` checks formatting and the lint rules without writing.
format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

lint: install
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
