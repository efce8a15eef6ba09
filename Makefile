# genlab: `make repro` runs the pipeline, `make test` the test suite; both set up .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
# Stage commands call `python`/`dvc`: make them the venv's.
RUN    := PATH="$(BIN):$$PATH"

.PHONY: install repro readme test test-fast ui server push pull offline-data clean-outputs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[test]'
	touch $@

repro: install
	$(RUN) dvc repro

# README's leaderboard block: the first section of reports/leaderboard.md (tests/test_docs.py keeps them equal).
readme: install
	$(RUN) python docs/hooks.py

# Every output DVC tracks (raw and packed data, features, evaluators, models, samples) to the default
# remote (.dvc/config; a team's S3/SSH remote when one is set in .dvc/config.local), and back.
push: install
	$(RUN) dvc push

pull: install
	$(RUN) dvc pull

# Test files in parallel, one worker a core (pytest-xdist): a module's fixture stays in one process;
# the slowest tests listed at the end.
test: install
	$(RUN) python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15

test-fast: install
	$(RUN) python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not e2e and not slow"

# MLflow 3 opens experiments as GenAI apps (traces, token usage) until "Model training" is chosen
# once in the browser; this address chooses it and lands on the runs tables.
ui: install
	@echo "genlab: open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(RUN) mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" \
		--default-artifact-root "$(CURDIR)/mlartifacts" --port 5000

# A team's MLflow server on PostgreSQL (Debian's postgresql), bound to 127.0.0.1:5000; then
# `export MLFLOW_TRACKING_URI=http://127.0.0.1:5000` wherever the pipeline runs. docs/tracking.md "Team server".
server: install
	$(RUN) genlab server

# Optional: Fashion-MNIST from Debian, so the pipeline runs with no internet.
offline-data:
	apt-get install -y dataset-fashion-mnist
