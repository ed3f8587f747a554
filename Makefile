# Hokusai ML platform — developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Tools from the venv, no colours in logs.
export PATH := $(BIN):$(PATH)
export NO_COLOR := 1
export ANSIBLE_NOCOLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

# Mitogen (requirements.txt) runs each host's tasks in one persistent Python
# interpreter instead of a new `docker exec` (or ssh) + interpreter per task:
# the per-task overhead that dominated re-runs. Every ansible-playbook and
# molecule run started from here uses it; HOKUSAI_MITOGEN=0 runs Ansible's own
# linear strategy instead. README "Deploy speed" says how to use it elsewhere.
# A make started before the venv exists (a fresh clone) cannot see Mitogen
# yet and runs the linear strategy; `make test` builds the venv first, so its
# stages all use Mitogen.
HOKUSAI_MITOGEN ?= 1
ifeq ($(HOKUSAI_MITOGEN),1)
MITOGEN_STRATEGY_DIR = $(firstword $(wildcard $(CURDIR)/$(VENV)/lib/python3*/site-packages/ansible_mitogen/plugins/strategy))
export ANSIBLE_STRATEGY_PLUGINS = $(MITOGEN_STRATEGY_DIR)
export ANSIBLE_STRATEGY = $(if $(MITOGEN_STRATEGY_DIR),mitogen_linear,linear)
endif

LAB_INVENTORY := inventories/lab
# Molecule scenarios run by `make test`, in this order, and those kept for
# `make test-extended` (their ground is covered in `make test` by lab-test:
# backup by the backup drill (backup, verify with a real restore test,
# restore.yml); keepalived by test_lb_failover on the lab's two load balancers;
# monitoring by the lab's Prometheus/Alertmanager pair: health.yml's checks,
# test_monitoring_ha (an alert delivered once with one Alertmanager down), and
# every alert rule's promtool cases in the gate).
SCENARIOS ?= etcd patroni minio mlflow
EXTENDED_SCENARIOS ?= backup keepalived monitoring
FIGURES := .lab-figures

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- environment -----------------------------------------------------------
$(VENV)/.stamp: requirements.txt
	@echo "==> Python venv $(VENV) from requirements.txt"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -r requirements.txt
	@# ansible-lint called by its path without the venv on PATH (an editor, a
	@# reviewer's shell) would warn "PATH altered" and prepend the venv itself:
	@# a wrapper puts the venv first, so every ansible it runs is the venv's.
	@grep -q 'Wrapper made by make venv' $(VENV)/bin/ansible-lint || mv -f $(VENV)/bin/ansible-lint $(VENV)/bin/ansible-lint.real
	@printf '#!/bin/sh\n# Wrapper made by make venv: the venv first on PATH, then the real ansible-lint.\nd=$$(dirname "$$0")\nPATH="$$d:$$PATH" exec "$$d/ansible-lint.real" "$$@"\n' > $(VENV)/bin/ansible-lint
	@chmod 0755 $(VENV)/bin/ansible-lint
	@touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## Controller venv (ansible, molecule, linters)

# Wheels for Python services installed on lab/Molecule hosts without a package
# index (pip inside the containers may not reach one). Cached outside the clone.
WHEELS ?= /var/cache/hokusai/wheels
export HOKUSAI_WHEELS_DIR := $(WHEELS)

.PHONY: wheels
wheels: ## Build the pinned wheels lab hosts install offline (Patroni, MLflow)
	@for c in patroni mlflow; do \
	  echo "==> wheels for $$c into $(WHEELS)/$$c"; mkdir -p $(WHEELS)/$$c; \
	  $(PYTHON) -m pip wheel -q --no-deps -w $(WHEELS)/$$c -r roles/$$c/files/requirements.txt; \
	done

.PHONY: minio-bin
minio-bin: ## Build MinIO and mc from source (Go module proxy), cached in /var/cache/hokusai
	@tests/lab/build-minio.sh

.PHONY: engine
engine: ## Make a Docker engine answer (installs and starts docker.io if needed)
	@tests/lab/lab-engine.sh engine

.PHONY: image
image: engine ## Build the lab base image (cached by recipe hash)
	@tests/lab/lab-engine.sh image

# --- the lab ---------------------------------------------------------------
.PHONY: lab
lab: venv image wheels minio-bin ## Bring up the whole stack on local containers: site.yml, re-run, health, endpoints, figures
	@tests/lab/deploy.sh

.PHONY: lab-hosts
lab-hosts: venv image ## Create the lab containers only
	@echo "==> lab hosts (systemd containers on network hokusai-lab)"
	@ansible-playbook -i $(LAB_INVENTORY) tests/lab/lab.yml

.PHONY: lab-summary
lab-summary: venv ## Print endpoints of the running lab and the last deploy figures
	@ansible-playbook -i $(LAB_INVENTORY) tests/lab/summary.yml

.PHONY: health
health: venv ## playbooks/health.yml against the lab: one table, fails naming what is unhealthy
	@ansible-playbook -i $(LAB_INVENTORY) playbooks/health.yml

.PHONY: lab-cpu
lab-cpu: ## CPU each lab container uses over SECONDS_WINDOW (30) seconds, in cores: what the idle lab costs
	@tests/lab/idle-cpu.sh

.PHONY: lab-destroy
lab-destroy: venv ## Remove the lab containers and network (keeps .secrets/)
	@ansible-playbook -i $(LAB_INVENTORY) tests/lab/lab.yml -e lab_state=absent

# --- tests -------------------------------------------------------------------
.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), ruff, mypy (modules, module_utils, host tools: mypy.ini)
	@echo "==> yamllint"; yamllint -s .
	@echo "==> ansible-lint"; ansible-lint -q
	@echo "==> ruff"; ruff check . && ruff format --check .
	@echo "==> mypy"; mypy

.PHONY: unit
unit: venv ## pytest unit tests (tests/unit) and promtool rule tests (tests/rules)
	@echo "==> pytest tests/unit"; pytest -q tests/unit
	@echo "==> promtool test rules (tests/rules)"; tests/rules/run.sh

.PHONY: sdk-test
sdk-test: ## SDK: ruff, mypy --strict, unit and integration tests against a real mlflow server
	@echo "==> sdk tests"; sdk/scripts/test.sh

.PHONY: molecule
molecule: venv image wheels minio-bin ## Molecule scenarios in $(SCENARIOS)
	@for s in $(SCENARIOS); do \
	  echo "==> molecule test -s $$s"; t0=$$(date +%s); \
	  tests/lab/molecule-test.sh $$s; \
	  echo "==> scenario $$s passed in $$(( $$(date +%s) - t0 )) s"; \
	done

# The end-to-end tests lab-test runs in make test: one case of each failure
# suite (the full suites: `make e2e`; the whole-stack faults: `make chaos`,
# whose two-fault smoke lab-test runs too). Of the load balancer suite: the
# holder killed and the frozen instance (test_lb_failover's nginx-stopped case,
# 30 s, is left to `make e2e` for the 45-minute budget).
E2E_ALL := test_lab_stack.py test_dashboards.py test_failover_registrations.py test_minio_node_loss.py test_monitoring_ha.py test_lb_failover.py \
  test_artifact_node_loss.py
E2E_CI := test_lab_stack.py test_dashboards.py \
  test_lb_failover.py::test_exactly_one_load_balancer_holds_the_address test_lb_failover.py::test_holder_killed_under_registrations \
  test_lb_failover.py::test_frozen_instance_leaves_rotation \
  'test_minio_node_loss.py::test_wal_archiving_goes_on_without_minio1[partitioned]' \
  test_artifact_node_loss.py::test_two_nodes_lost_reads_go_on_writes_refused_fast \
  test_monitoring_ha.py::test_alert_arrives_once_with_the_first_alertmanager_down
E2E ?= $(E2E_ALL)

.PHONY: e2e
e2e: venv ## End-to-end tests against the running lab: SDK through the entry point, registrations through a primary crash, MinIO node loss, the monitoring pair, load balancer loss and a frozen instance (E2E= narrows)
	@venv=$$(sdk/scripts/venv.sh | tail -n 1); \
	  echo "==> pytest tests/e2e (SDK venv $$venv)"; \
	  cd tests/e2e && HOKUSAI_ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook $$venv/bin/python -m pytest -v -rP -p no:cacheprovider --durations=0 $(E2E)

.PHONY: drift
drift: venv ## Against the running lab: edit a managed file and stop a managed service on mlflow1, site.yml must repair both and change nothing else
	@echo "==> pytest tests/e2e/test_drift.py"
	@cd tests/e2e && HOKUSAI_ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook pytest -v -rP -p no:cacheprovider test_drift.py

.PHONY: backup-drill
backup-drill: venv ## Against the running lab (destroys its data): backup, verify (restore test), restore.yml, health
	@venv=$$(sdk/scripts/venv.sh | tail -n 1); \
	  echo "==> pytest tests/e2e/test_backup_drill.py (SDK venv $$venv)"; \
	  cd tests/e2e && HOKUSAI_ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook $$venv/bin/python -m pytest -v -rP -p no:cacheprovider test_backup_drill.py

.PHONY: lab-test
lab-test: venv image wheels minio-bin ## The whole stack from fresh lab hosts (timed), health, chaos smoke, drift repair (= the idempotent re-run), e2e (one case per suite), backup drill
	@echo "==> lab-test: removing any previous lab, then make lab from fresh hosts"
	@$(MAKE) --no-print-directory lab-destroy
	@# No plain re-run here: the drift test below is the idempotence check (its
	@# whole-inventory site.yml run may change only the two drifted things).
	@LAB_RERUN=0 tests/lab/deploy.sh
	@# The smoke first: its preflight wants a lab with no alert firing, which
	@# the fresh deploy has just proven (the other suites leave alerts behind).
	@$(MAKE) --no-print-directory chaos-smoke
	@$(MAKE) --no-print-directory drift
	@$(MAKE) --no-print-directory e2e E2E="$(E2E_CI)"
	@$(MAKE) --no-print-directory backup-drill

# The whole-stack fault matrix (tests/chaos): workloads through the entry point while each fault
# hits real lab containers; report in $(FIGURES)/chaos. FAULTS=name,name runs a selection.
CHAOS = venv=$$(sdk/scripts/venv.sh | tail -n 1); cd tests/chaos && \
  HOKUSAI_ANSIBLE_PLAYBOOK=$(BIN)/ansible-playbook $$venv/bin/python chaos.py

.PHONY: chaos
chaos: venv ## Against the running lab: the full fault matrix (~33 min measured), report in .lab-figures/chaos
	@$(CHAOS) --faults $${FAULTS:-all} --out $(CURDIR)/$(FIGURES)/chaos

.PHONY: chaos-smoke
chaos-smoke: venv ## Against the running lab: two faults of the matrix (leader host killed, MLflow instance killed)
	@$(CHAOS) --faults smoke --out $(CURDIR)/$(FIGURES)/chaos-smoke

.PHONY: gate
gate: venv ## Fast first gate of make test: lint and unit side by side (about 2 min)
	@# Two jobs: ansible-lint and the preflight tests are each single-threaded
	@# (104 s and 158 s one after the other on a loaded machine).
	@$(MAKE) --no-print-directory -j2 -Otarget lint unit

# Cheapest first, so that a broken change fails within minutes; each stage
# prints its duration (the CI budget: README "Tests and CI").
.PHONY: test
test: venv ## Everything CI runs: gate, SDK tests, Molecule scenarios, the whole stack on a fresh lab
	@t0=$$(date +%s); for stage in gate sdk-test molecule lab-test; do \
	  s0=$$(date +%s); $(MAKE) --no-print-directory $$stage; \
	  echo "==> stage $$stage passed in $$(( $$(date +%s) - s0 )) s"; \
	done; echo "==> all test stages passed in $$(( $$(date +%s) - t0 )) s"

.PHONY: test-extended
test-extended: ## Suites kept out of make test for its budget: $(EXTENDED_SCENARIOS) scenarios
	@$(MAKE) --no-print-directory molecule SCENARIOS="$(EXTENDED_SCENARIOS)"

# --- heavier suites (not part of `make test`) --------------------------------
.PHONY: bench-failover
bench-failover: venv image wheels ## Failover figures: crash, host loss, switchover; default vs chosen timers
	@molecule create -s patroni && molecule converge -s patroni
	@python tests/bench/failover_bench.py --runs $${RUNS:-3}
	@molecule destroy -s patroni
