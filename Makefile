# Two commands for a fresh machine (Python 3.11 + pip + the package registries):
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run the whole test suite (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: lab test install export clean-nbs student bench docs nb readme

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/activate settings.ini setup.py
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Jupyter refuses to run as root unless told to (containers and CI machines often are root)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	$(BIN)/jupyter lab $(ROOT_FLAG) nbs/

test: install
	$(BIN)/python .ci/checks.py

export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

student: install
	$(BIN)/pp_student_copies nbs learner

bench: install
	$(BIN)/python .ci/bench.py

docs: install
	$(BIN)/nbdev_proc_nbs

# Re-run one notebook top to bottom in a fresh kernel, save its outputs, clean it:
#   make nb NB=nbs/00_tensors.ipynb
nb: install
	$(BIN)/nbdev_export
	cd $(dir $(NB)) && $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.timeout=900 $(notdir $(NB))
	$(BIN)/nbdev_clean --fname $(NB)
	$(BIN)/nbdev_export

readme: install
	$(BIN)/python .ci/readme.py
