# Set-up is two commands:  make demo  (creates .venv, installs, runs the toy pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# the demo's own folders: its stages' run folders and its report (make clean-demo removes both)
DEMO_WORK ?= experiments/demo
DEMO_OUT ?= results/demo

.PHONY: demo test install toy photo study-data study study-quick clean-demo gpu-check

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt "setuptools<80" wheel
	$(PIP) install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
	# visdom 0.3.0 builds only with an old setuptools and without build isolation
	$(PIP) install -q -c constraints.txt --no-build-isolation visdom
	touch $(STAMP)

install: $(STAMP)

toy: $(STAMP)
	$(PY) datasets/make_toy_dataset.py

photo: $(STAMP)
	$(PY) datasets/make_photo_dataset.py

# the compression study's denoising tasks (datasets/study), and the study itself (results/study[_quick])
study-data: $(STAMP)
	$(PY) datasets/make_study_tasks.py

study: $(STAMP)
	$(PY) benchmarks/compression_study.py

study-quick: $(STAMP)
	$(PY) benchmarks/compression_study.py --quick

# each run starts over: the stage folders of an earlier run under $(DEMO_WORK) are removed first
demo: toy
	$(PY) scripts/demo.py --work $(DEMO_WORK) --out $(DEMO_OUT)

clean-demo:
	rm -rf $(DEMO_WORK) $(DEMO_OUT)

test: toy
	$(PY) -m pytest -q -n 2 tests

# on a GPU machine: the CUDA tests and the GPU benchmark table (scripts/gpu_check.sh picks or makes the Python)
gpu-check:
	bash scripts/gpu_check.sh
