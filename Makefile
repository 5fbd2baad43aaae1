# trust-publisher: the everyday commands. CI runs `bash .ci/run` (the README's test command).
PY ?= python3

.PHONY: install demo test check lint typecheck bench

install:
	$(PY) -m pip install -q -e '.[test]'

demo:
	$(PY) -m pip install -q -e . && publisher demo

test: install
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy

check: install lint typecheck
	$(PY) -m pytest -q

bench: install
	$(PY) bench/run.py
