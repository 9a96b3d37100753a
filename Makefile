# Two commands do all set-up on a fresh machine:  make test   and   make demo
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.relaxflow-installed
# torch is pinned to the CPU wheel that lies on this kind of machine's disk; on a GPU
# machine install the torch build you want first and run `pip install -e .[test]`.
TORCH  ?= torch==2.13.0

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v gfortran >/dev/null 2>&1 || { \
	  echo "installing gfortran (escnn's py3nj needs a Fortran compiler)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq gfortran; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq gfortran; fi; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
