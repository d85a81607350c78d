#!/usr/bin/env bash
# Accelerator check of contrastive pretraining, run from the repository root on a GPU machine:
#   bash benchmarks/gpu_check.sh OUT_DIR
# Wheels of the packages the machine lacks (ase, vesin, hydra-core, pymatgen, ...) may be placed in .whl/.
set -u
out=${1:-gpu_results}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 300 python3 benchmarks/gpu_speedups.py --device cuda --json "$out/gpu_speedups.json"
timeout 150 python3 benchmarks/step_cost.py --device cuda --measurements inference training contrastive \
  --repeats 10 --json "$out/step_cost_cuda.json"
