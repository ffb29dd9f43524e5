#!/usr/bin/env bash
# The GPU check of a lent machine: needs only the clone, about 5 minutes on one GPU.
#   make gpu-check        (or: bash scripts/gpu_check.sh)
# 1. picks the Python (below), checks that it has every package the check imports, and makes the toy data,
# 2. runs the tests marked `cuda` (every model and stage on the GPU, --amp on and off, a 1-GPU torchrun
#    NCCL run, export of a GPU generator) and lists every skipped test with its reason,
# 3. runs benchmarks/run_all.py --device cuda (fp32, --amp, --amp --channels_last) and writes
#    benchmarks/results_cuda.md.
# The Python: $GPU_CHECK_PYTHON if set; else .venv/bin/python if .venv exists; else python3 if its torch
# sees a GPU (a machine with a CUDA PyTorch already installed, offline ones included: no .venv is made);
# else `make install` makes .venv (pip downloads a CUDA build of the pinned torch).
set -uo pipefail
# a relative GPU_CHECK_PYTHON is relative to where the script was started, not to the repository
if [[ -n "${GPU_CHECK_PYTHON:-}" && "$GPU_CHECK_PYTHON" == */* && "$GPU_CHECK_PYTHON" != /* ]]; then
  GPU_CHECK_PYTHON="$PWD/$GPU_CHECK_PYTHON"
fi
cd "$(dirname "$0")/.."
status=0

has_cuda_torch() {
  "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
}

if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
  PY=$GPU_CHECK_PYTHON
  why="GPU_CHECK_PYTHON"
elif [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
  why=".venv"
elif command -v python3 >/dev/null 2>&1 && has_cuda_torch python3; then
  PY=python3
  why="python3 has a CUDA PyTorch; no .venv made"
else
  make -s install || { echo "gpu-check: make install failed: see above, or give a Python with a CUDA PyTorch as GPU_CHECK_PYTHON=..."; exit 2; }
  PY=.venv/bin/python
  why="made .venv"
fi
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "gpu-check: no Python at '$PY' ($why): give an existing interpreter as GPU_CHECK_PYTHON=..."
  exit 2
fi
if [[ "$("$PY" -c 'import sys; print(sys.version_info[0])' 2>/dev/null)" != "3" ]]; then
  echo "gpu-check: '$PY' ($why) is not a Python 3 interpreter: give one as GPU_CHECK_PYTHON=..."
  exit 2
fi
# every package the tests and the benchmark import, named as pip knows them, before anything runs
missing=$("$PY" - <<'EOF'
import importlib.util
need = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "PIL": "Pillow", "scipy": "scipy",
        "tqdm": "tqdm", "dominate": "dominate", "pytorch_fid": "pytorch-fid", "torchmetrics": "torchmetrics",
        "onnx": "onnx", "onnxruntime": "onnxruntime", "pytest": "pytest"}
print(" ".join(pip for module, pip in need.items() if importlib.util.find_spec(module) is None))
EOF
)
if [[ -n "$missing" ]]; then
  echo "gpu-check: $PY ($why) lacks $missing: install them into it (pip install $missing) or use .venv (make install)"
  exit 2
fi
if ! has_cuda_torch "$PY"; then
  build=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "")')
  if [[ "$build" == *" " ]]; then  # no CUDA version: a CPU build
    echo "gpu-check: the torch of $PY ($why) is a CPU build (${build% }): install a CUDA build of torch" \
         "(README, set-up) on a GPU machine"
  else
    echo "gpu-check: the torch of $PY ($why; ${build% *}, CUDA ${build##* }) sees no GPU: nothing to check;" \
         "run it on a machine with an NVIDIA GPU and its driver (nvidia-smi lists it)"
  fi
  exit 2
fi
"$PY" -c "import torch, sys; print('gpu-check on', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| Python', sys.version.split()[0])"
echo "Python: $PY ($why)"
"$PY" datasets/make_toy_dataset.py || exit 1

echo "== tests marked cuda (skips are listed with their reasons)"
"$PY" -m pytest -q -m cuda -rs tests || status=1

echo "== benchmark table (rows that fail are listed under the table)"
"$PY" benchmarks/run_all.py --device cuda --iters 5 --warmup 2 --runs 5 --output benchmarks/results_cuda.md || status=1
exit $status
