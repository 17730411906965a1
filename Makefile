# Developer commands. `make test` is the README's test command and what .ci/run runs.
SHELL := /bin/bash
.PHONY: test nbtest pytest docs readme bench clean

# Notebook tests first (one worker: measured faster than two on 2 cores, imports are re-used), then pytest LAST so its
# summary line closes the log. pytest builds the docs site and opens every page in headless chromium.
test: nbtest pytest

nbtest:
	timeout 1500 nbdev_test --n_workers 1

pytest:
	@set +e; python -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

# Offline docs site in _site/ (no Quarto needed): executes the notebooks, nbdev processing, mkdocs-material.
# The builder is a developer tool, not in the package: `python tools/docs_site.py --help` lists its options;
# `python tools/docs_site.py --keep-going` builds every page even when a notebook fails (and still exits 1).
docs:
	python tools/docs_site.py

# README.md is generated from nbs/index.ipynb.
readme:
	python tools/docs_site.py --readme

# Speed comparisons (tables of ratios), not tests.
bench:
	@shopt -s nullglob; files=(bench/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no bench scripts in bench/"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; python "$$f" || exit 1; done

clean:
	rm -rf _site _proc _docs build dist test-artifacts
