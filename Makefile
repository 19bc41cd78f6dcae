# mpclr: every target sets itself up on a fresh machine (Python 3.10+, gcc; no conda, no GitHub).
# The first set-up builds Pyfhel once (about 2-6 minutes) and caches the wheel in ~/.cache/mpclr/wheels.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mpclr-installed

.PHONY: demo test setup lint benchmark lab app clean

demo: $(STAMP)            ## encrypted cross-validation on the embedded default data set
	$(BIN)/mpclr demo

test: $(STAMP)            ## the whole test suite
	$(BIN)/python -m pytest

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py mpclr/ring/_kernels.c .ci/pyfhel-wheel.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$$(.ci/pyfhel-wheel.sh $(BIN)/python)"
	$(BIN)/python -m pip install --quiet -e '.[notebooks,test,deploy]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check mpclr tests benchmarks notebooks
	$(BIN)/nbstripout --verify notebooks/*.ipynb notebooks/app/*.ipynb

benchmark: $(STAMP)       ## protocol and training benchmarks (slow; JSON into benchmarks/results)
	$(BIN)/python benchmarks/protocols.py

lab: $(STAMP)             ## JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks

app: $(STAMP)             ## the workshop and study pages in the browser (Voila on 127.0.0.1; URL with token printed)
	$(BIN)/mpclr app

clean:
	rm -rf $(VENV) build *.egg-info mpclr/ring/*.so
