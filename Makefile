# The README's two commands: `make lab` opens the course, `make test` checks all of it.
# Both first install whatever is missing, and only that: evcxr_jupyter (the Rust kernel),
# a Python environment with Jupyter in $(VENV), and the kernel registered in it.
# Conda users: `make lab VENV=$$CONDA_PREFIX` inside the environment.yml environment.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
EVCXR_VERSION := 0.22.0
EVCXR := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/evcxr_jupyter
KERNEL_DIR := $(VENV)/share/jupyter
# Jupyter refuses to run as root unless told; containers often run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test book setup evcxr kernel chromium clear-outputs bench bench-torch

lab: setup
	@echo "Opening JupyterLab on notebooks/ (the URL follows). The first notebook's first cell"
	@echo "compiles the crate's dependencies, about 5 minutes once; later kernels start in seconds."
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ALLOW_ROOT) $(LAB_ARGS)

test: setup
	MUSTKNOW_PYTHON=$(PYTHON) cargo test --release

setup: kernel $(VENV)/.requirements-installed

# The course as a static site in target/book/ from the runner's executed notebooks (it runs
# the runner first for any notebook whose executed copy is missing or out of date), then
# checked in headless Chromium (tools/book/check.py). Open target/book/index.html.
book: setup chromium
	MUSTKNOW_PYTHON=$(PYTHON) $(PYTHON) tools/book/build.py
	$(PYTHON) tools/book/check.py

# Notebooks are stored without outputs: run this after saving a notebook you ran in the lab.
clear-outputs: $(VENV)/.requirements-installed
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

# Installs evcxr_jupyter when it is missing or at another version.
evcxr:
	@if ! { [ -x $(EVCXR) ] && cargo install --list | grep -qx "evcxr_jupyter v$(EVCXR_VERSION):"; }; then \
		echo "Installing evcxr_jupyter $(EVCXR_VERSION) (about 8 minutes, once)"; \
		cargo install --locked evcxr_jupyter --version $(EVCXR_VERSION); \
	fi

# Registers the kernel where $(VENV)'s Jupyter looks, not in the user's global folder, and
# starts it through tools/kernel.py: build folders that outlive a kernel, release speed.
kernel: evcxr $(VENV)/.requirements-installed
	@JUPYTER_PATH=$(KERNEL_DIR) $(EVCXR) --install > /dev/null
	@$(PYTHON) tools/kernel.py --install $(KERNEL_DIR)/kernels/rust/kernel.json

# The book's check drives the system's Chromium (Playwright cannot download its own here).
# As root on Debian or Ubuntu it is installed when missing; otherwise the message says how.
CHROMIUM_FOUND = command -v chromium || command -v chromium-browser || command -v google-chrome || [ -n "$$MUSTKNOW_CHROMIUM" ]

chromium:
	@{ $(CHROMIUM_FOUND); } > /dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
		echo "Installing Chromium (Debian's package) for the book's check"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; \
	else \
		echo "make book checks the site in Chromium: install it (Debian/Ubuntu: sudo apt install chromium), or set MUSTKNOW_CHROMIUM to a Chrome or Chromium binary"; \
		exit 1; \
	fi

# A failed venv (Debian without python3-venv) would leave a python without pip: remove it.
$(PYTHON):
	python3 -m venv $(VENV) || { rm -rf $(VENV); \
		echo "python3 -m venv failed: install Python's venv module (Debian/Ubuntu: apt install python3-venv), then run make again"; \
		exit 1; }

$(VENV)/.requirements-installed: requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Benchmarks (benches/compare.py): the crate's layers and training steps, side by side with
# PyTorch when `make bench-torch` has installed it (opt-in: about 5 GB, kept out of
# `make test` and CI), and the convolutions against the matrix product's speed; the
# kernel's latencies; every notebook's run time and peak memory (about 25 minutes;
# `make bench BENCH_ARGS=--no-notebooks` skips it).
TORCH_VENV := target/torch-venv

bench: setup
	MUSTKNOW_PYTHON=$(PYTHON) python3 benches/compare.py $(BENCH_ARGS)

bench-torch:
	[ -x $(TORCH_VENV)/bin/python ] || python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch
