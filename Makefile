# Shortcuts for scripts/test; the script is the source of truth (CI runs it too).
.PHONY: test fast lint lock

test:  ## the full run: lint, types, contracts, fuzz, both backends, browser
	scripts/test $(ARGS)

fast:  ## embedded backend only, seconds for one test: make fast ARGS=tests/verify
	scripts/test --fast $(ARGS)

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

lock:  ## after a dependency change in pyproject.toml
	.venv/bin/uv lock
