# Two entry points for a fresh machine: `make demo` (the main job, offline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1

.PHONY: setup browser demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	# lpips only ships LPIPS's linear heads here; its metadata asks for torchvision, which must never come in
	$(PY) -m pip install -q -c constraints.txt --no-deps lpips
	@! $(PY) -m pip show -q torchvision 2>/dev/null || (echo "torchvision must not be installed" && exit 1)
	touch $@

demo: setup
	$(VENV)/bin/u2s demo --out u2s-demo

browser:
	.ci/browser

test: setup browser
	$(PY) -m pytest tests -q

bench: setup
	$(PY) benchmarks/bench_local.py

clean:
	rm -rf $(VENV) u2s-demo .pytest_cache
