# nqrust.microvm — every command sets itself up on a fresh Debian 12 machine (as root).
#
#   make demo        build the lab, a throwaway registry, and run the collection against it
#   make demo-clean  remove everything the demo made
#   make test        every test lane below; non-zero exit on any failure
#
# Lanes: sanity (ansible-test sanity + ansible-lint), units, integration, kernel, molecule, bench.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python
# A second interpreter for modules: pyroute2 0.7.2, as Debian 12 ships it (python3-pyroute2).
VENV_PR07   := $(ROOT)/.venv-pyroute2-0.7
BUILD       := $(ROOT)/build
COLLECTIONS := $(BUILD)/collections
COLLECTION  := $(COLLECTIONS)/ansible_collections/nqrust/microvm
RESULTS     := $(BUILD)/results

export PATH := $(VENV)/bin:$(PATH)
export PYTHONPATH := $(ROOT)/tests
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_NOCOLOR := true
export ANSIBLE_FORCE_COLOR := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PYTEST := $(PY) -m pytest -p no:cacheprovider -ra

.PHONY: help setup host-packages venv collection \
        test sanity lint units integration kernel kernel-slow molecule bench bench-quick \
        demo demo-clean clean

help:
	@sed -n '1,10p' Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- set-up
host-packages:
	@tests/tooling/install-host-packages.sh

$(VENV)/.stamp: requirements/test.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/test.txt
	tests/tooling/install-get-pip-standin.sh $(PY)
	@touch $@

$(VENV_PR07)/.stamp: requirements/target-pyroute2-0.7.txt
	@test -x $(VENV_PR07)/bin/python || python3 -m venv $(VENV_PR07)
	$(VENV_PR07)/bin/python -m pip install -q -r requirements/target-pyroute2-0.7.txt
	@touch $@

venv: $(VENV)/.stamp $(VENV_PR07)/.stamp

setup: host-packages venv

# A real copy of the checkout at .../ansible_collections/nqrust/microvm (ansible-test needs a
# real path, not a symlink); refreshed before every lane so it is never stale.
collection: setup
	@mkdir -p $(COLLECTION) $(RESULTS)
	@rsync -a --delete --exclude .git --filter=':- .gitignore' ./ $(COLLECTION)/
	@test -d $(COLLECTION)/.git || git -C $(COLLECTION) init -q
	@# the import path tests use to run modules straight from this checkout (lab.module_run)
	@mkdir -p $(BUILD)/module-path/ansible_collections/nqrust
	@ln -sfn $(ROOT) $(BUILD)/module-path/ansible_collections/nqrust/microvm

# ---------------------------------------------------------------- lanes
# bench-quick: CI has 90 minutes, and bench_registry_inventory alone takes 11-16 (its reference parses
# a 33 MB static YAML inventory); `make bench` runs it with the others.
test: setup
	@tests/tooling/run-lanes.sh sanity units integration kernel molecule bench-quick

sanity: collection
	cd $(COLLECTION) && ansible-test sanity --venv --python 3.11 --color no
	$(MAKE) --no-print-directory lint

lint: collection
	ansible-lint --offline --profile production

units: collection
	rm -rf $(COLLECTION)/tests/output/junit $(RESULTS)/units-*.xml
	@# ansible-test runs pytest with a clean environment, so pytest's base temp dirs land in
	@# /tmp/pytest-of-$$USER: remove the ones this run made afterwards.
	@test -d /tmp/pytest-of-$$(id -un) && echo keep > $(BUILD)/pytest-of-existed || rm -f $(BUILD)/pytest-of-existed
	cd $(COLLECTION) && ansible-test units --venv --python 3.11 --color no; rc=$$?; \
	  for f in $(COLLECTION)/tests/output/junit/*.xml; do [ -e "$$f" ] && cp "$$f" $(RESULTS)/units-$${f##*/}; done; \
	  test -f $(BUILD)/pytest-of-existed || rm -rf /tmp/pytest-of-$$(id -un); exit $$rc

# Every integration test with the venv's pyroute2 0.9, then the module tests again with the
# modules running under pyroute2 0.7 (what Debian 12 hosts have).
# Both lanes first remove what an earlier, killed run left (python -m lab sweep reports it), and
# end with a sweep --check that fails the lane when this run left anything behind.
integration: collection
	$(PY) -m lab sweep
	$(PYTEST) -m 'not kernel' --junitxml=$(RESULTS)/integration.xml tests/integration; rc=$$?; \
	  NQRUST_TARGET_PYTHON=$(VENV_PR07)/bin/python $(PYTEST) -m 'module and not kernel' \
	    --junitxml=$(RESULTS)/integration-pyroute2-0.7.xml tests/integration || rc=1; \
	  $(PY) -m lab sweep --check || rc=1; exit $$rc

kernel: collection
	tests/kernel/run-lane.sh

# the kernel tests marked slow (playbooks under qemu TCG: tens of minutes); not part of make test
kernel-slow: collection
	NQRUST_KERNEL_SELECT='kernel and slow' NQRUST_KERNEL_PYROUTE2_07_PASS=0 tests/kernel/run-lane.sh

molecule: collection
	$(PY) -m lab sweep
	cd $(COLLECTION) && NO_COLOR=1 molecule test --all; \
	  rc=$$?; $(PY) -m lab sweep --check || rc=1; exit $$rc

bench: collection
	@for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

bench-quick: collection
	@for b in tests/bench/bench_*.py; do \
	  case $$b in */bench_registry_inventory.py) echo "== $$b: left out (make bench runs it)"; continue ;; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; done

# ---------------------------------------------------------------- demo
demo: collection
	tests/tooling/demo.sh up

demo-clean: setup
	tests/tooling/demo.sh down

clean: demo-clean
	rm -rf $(BUILD)
