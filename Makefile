# Set-up and entry points. Every target is idempotent: a second run reuses the environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On a CUDA machine: make setup CONSTRAINTS=  (lets pip choose the CUDA torch build)
CONSTRAINTS ?= constraints-cpu.txt
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS) -c constraints-lock.txt,)
PRESET ?= demo

.PHONY: setup demo test bench clean-cache

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt constraints-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install $(PIP_C) -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/mobile-pipeline release --preset $(PRESET)

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean-cache:
	rm -rf .mp_cache
