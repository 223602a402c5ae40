# Two commands do all set-up on a fresh machine:
#   make train   -> create .venv, install CPU torch + robot-rl, train the Crazyflie hover policy and export it
#   make test    -> create .venv, install the same, run the test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU torch first so that nothing pulls a multi-GB CUDA build. On another machine any torch >= 2.4 works:
#   make train TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
SEED ?= 0
OUT ?= runs/crazyflie-hover/seed$(SEED)
PYTEST_ARGS ?=

.PHONY: train test lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev,arm,backends]'
	touch $@

train: $(VENV)/.installed
	$(VENV)/bin/robot-rl train crazyflie-hover --seed $(SEED) --out $(OUT)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as a failure"; exit 1; fi; exit $$rc

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs
