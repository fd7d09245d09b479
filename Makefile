# Fleet — two commands: `make demo` runs the platform, `make test` runs every check.
.PHONY: demo test setup setup-test lint bench clean

demo: setup
	.venv/bin/fleet demo

test: setup-test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	@echo "benchmarks: see docs/benchmarks.md (one command each under bench/)"

clean:
	rm -rf .venv web/frontend/node_modules web/frontend/dist
