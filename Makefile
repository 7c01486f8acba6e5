# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.ct-installed
# CPU torch first: an unpinned resolve pulls a multi-GB CUDA build.
TORCH   = torch==2.13.0

.PHONY: demo test test-slow install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the real CGCNN trained on real perovskites with its default features and with CT.
demo: install
	$(BIN)/ct info
	$(BIN)/ct demo

# pytest exits 5 when it collects no tests: not a failure of the suite.
test: install
	$(BIN)/python -m pytest -m "not slow" -q; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-slow: install
	$(BIN)/python -m pytest -m slow -q; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

clean:
	rm -rf $(VENV) build dist *.egg-info
