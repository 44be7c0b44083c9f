# Two commands for a fresh machine (Python >= settings.ini's min_python, pip, the package registries):
#   make lab     set up .venv, write your learner copies (only those missing) and open them in JupyterLab
#   make test    set up .venv and run the whole test suite (what CI runs, less the floor and Colab runs)
#   make compat  every notebook on the floor versions of settings.ini, in a separate venv (_work/compat/)
#   make colab   every notebook on Colab's package set, installed as the Colab cells do (_work/colab/)
PYTHON ?= $(shell command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
MIN_PYTHON := $(shell sed -n 's/^min_python *= *//p' settings.ini)

.PHONY: lab test install export clean-nbs student bench docs nb readme compat colab chromium colab-cells

$(BIN)/activate:
	@$(PYTHON) -c "import sys; v = tuple(map(int, '$(MIN_PYTHON)'.split('.'))); sys.exit(0 if sys.version_info[:2] >= v else \
	  'the course needs Python $(MIN_PYTHON) or newer (settings.ini min_python); $(PYTHON) is ' + sys.version.split()[0] + \
	  ': run  make PYTHON=python$(MIN_PYTHON) ...')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/activate settings.ini setup.py
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Jupyter refuses to run as root unless told to (containers and CI machines often are root)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# learner/ holds your copies of the chapters, solutions removed: written when missing, never replaced
lab: install
	$(BIN)/pp_student_copies nbs learner
	$(BIN)/jupyter lab $(ROOT_FLAG) learner/

# The browser check drives JupyterLab in Chromium: use the system's, else install Debian's (as root)
# or Playwright's own; if none can be had, .ci/checks.py skips that one check and says why.
chromium: install
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	  || ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1 ) \
	  || $(BIN)/playwright install chromium >/dev/null 2>&1 \
	  || echo "no Chromium could be found or installed: the browser check will be skipped"

test: install chromium
	$(BIN)/python .ci/checks.py

# Needs only a Python of the floor version (python$(MIN_PYTHON) on PATH, else the default python3)
compat:
	$(PYTHON) .ci/compat.py

# Needs only a Python (the newest on the machine is used; Colab's is 3.13)
colab:
	$(PYTHON) .ci/colab.py

export: install
	$(BIN)/nbdev_export

clean-nbs: install
	$(BIN)/nbdev_clean

student: install  # `make student RESET="--reset 01_autograd.ipynb"` starts a copy afresh (the old one goes to learner/backup/)
	$(BIN)/pp_student_copies nbs learner $(RESET)

# Every chapter's badge and install cell from settings.ini's git_url, solutions folded for the docs, student/ rewritten
colab-cells: install
	$(BIN)/python .ci/colab_cells.py

bench: install
	$(BIN)/python .ci/bench.py

docs: install
	$(BIN)/nbdev_proc_nbs
	rm -f nbs/nbdev.yml  # written for Quarto beside the chapters; not part of the course


# Re-run one notebook top to bottom in a fresh kernel, save its outputs, clean it. Slow and cuda cells keep
# their saved (measured) outputs unless SLOW=1:
#   make nb NB=nbs/00_tensors.ipynb        make nb NB=nbs/04_training.ipynb SLOW=1
nb: install
	$(BIN)/nbdev_export
	$(BIN)/python .ci/run_nb.py $(NB) $(if $(SLOW),--slow,)
	$(BIN)/nbdev_clean --fname $(NB)
	$(BIN)/nbdev_export

readme: install
	$(BIN)/python .ci/readme.py
