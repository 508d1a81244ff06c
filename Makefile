# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench install clean constraints

# Re-install when the venv is missing or pyproject.toml/constraints.txt is newer than the last install.
# constraints.txt pins every package to the versions the suite passed on, so a fresh machine gets those,
# not whatever is newest inside pyproject's ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/workbench tui

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The fast tier: everything not marked slow (no pre-training, no full presets, no real terminals).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# After a deliberate upgrade (pip install -U ... in the venv) that passes `make test`: record it.
constraints:
	(sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable) > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) runs .pytest_cache
