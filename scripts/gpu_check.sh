#!/usr/bin/env bash
# The GPU check of a lent machine: needs only the clone, about 5 minutes on one GPU.
#   make gpu-check        (or: bash scripts/gpu_check.sh)
# 1. installs .venv (make install) and the toy data,
# 2. runs the tests marked `cuda` (every model and stage on the GPU, --amp on and off, a 1-GPU torchrun
#    NCCL run, export of a GPU generator) and lists every skipped test with its reason,
# 3. runs benchmarks/run_all.py --device cuda (fp32, --amp, --amp --channels_last) and writes
#    benchmarks/results_cuda.md.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
status=0

make -s toy || exit 1
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu-check: CUDA is not available to this torch ($($PY -c 'import torch; print(torch.__version__)')):" \
       "nothing to check; install a CUDA build of torch (README, set-up) on a GPU machine"
  exit 2
fi
$PY -c "import torch; print('gpu-check on', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"

echo "== tests marked cuda (skips are listed with their reasons)"
$PY -m pytest -q -m cuda -rs tests || status=1

echo "== benchmark table (rows that fail are listed under the table)"
$PY benchmarks/run_all.py --device cuda --iters 5 --warmup 2 --runs 5 --output benchmarks/results_cuda.md || status=1
exit $status
