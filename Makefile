# Two entry points: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv on first use. TORCH picks the torch build: the default is the CPU
# release this project is tested with; see the README for GPU builds.
VENV ?= .venv
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/albert-zh demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

.PHONY: install demo test
