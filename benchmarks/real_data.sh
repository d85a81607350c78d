#!/usr/bin/env bash
# Real-data check: contrastive pretraining on Materials Project crystals, frozen-embedding probes next to the
# random-encoder and composition baselines, and an energy head on mlearn Si from the pretrained encoder and from
# scratch. Run from the repository root:
#   bash benchmarks/real_data.sh DATA_DIR [OUT_DIR]
#   bash benchmarks/real_data.sh --data-dir DATA_DIR [--out OUT_DIR]
# DATA_DIR holds mp_train.extxyz.gz, perov_5_trainval.extxyz.gz and mlearn_Si_train.extxyz.gz.
# Budgets fit a 2-core CPU (about 35 minutes in all on a loaded machine); results are in OUT_DIR/<step>/metrics.json.
set -euo pipefail

data=""
out=/tmp/real
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) if [ -z "$data" ]; then data=$1; else out=$1; fi; shift ;;
  esac
done
if [ -z "$data" ]; then
  echo "usage: $0 DATA_DIR [OUT_DIR]  (or --data-dir DATA_DIR --out OUT_DIR)" >&2
  exit 2
fi
mkdir -p "$out"
data=$(cd "$data" && pwd)
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."  # the repository root, where conf/ lives
mp=$data/mp_train.extxyz.gz
n_mp=3000  # MP structures (the first n of the file); the probe must use the same number to reuse the split

# 1. Contrastive pretraining (SchNet, InfoNCE), composition split 80/10/10 of the first n_mp MP structures.
#    test_after_fit=false: the contrastive test step fails on the test loader, which yields plain graphs rather
#    than view pairs (ValueError: too many values to unpack); fitting and checkpoints are unaffected.
time python -m contrast.train hydra.run.dir="$out/pretrain" data.path="$mp" data.split=composition \
  'data.fractions=[0.8,0.1,0.1]' data.max_structures=$n_mp data.on_error=skip data.num_workers=1 \
  encoder=schnet trainer.max_epochs=3 logger=none test_after_fit=false

# 2. Probes of formation energy and band gap; the pretraining split is reused, so the probe's test set is the
#    pretraining test split (never seen in pretraining).
time python -m contrast.train task=probe task.checkpoint="$out/pretrain/checkpoints/last.ckpt" \
  hydra.run.dir="$out/probe_mp" data.path="$mp" data.max_structures=$n_mp data.on_error=skip \
  data.split=file data.split_file="$out/pretrain/splits.json" 'data.targets=[e_form_per_atom,band_gap]' \
  data.num_workers=1 trainer.max_epochs=10 logger=none

# 3. Probe of the perovskite heat of formation on perov_5 (only the val frames carry labels; the unlabelled
#    frames are skipped and counted in the data report).
time python -m contrast.train task=probe task.checkpoint="$out/pretrain/checkpoints/last.ckpt" \
  hydra.run.dir="$out/probe_perov" data.path="$data/perov_5_trainval.extxyz.gz" 'data.targets=[heat_all]' \
  data.on_error=skip 'data.fractions=[0.8,0.0,0.2]' data.num_workers=1 trainer.max_epochs=5 logger=none

# 4. Energy + forces head on mlearn Si (80/20 train/validation), from the MP-pretrained encoder and from
#    scratch with the same architecture. virial_stress_raw is not trained on (unit and sign unknown).
time OMP_NUM_THREADS=1 python -m contrast.train task=energy task.checkpoint="$out/pretrain/checkpoints/last.ckpt" \
  hydra.run.dir="$out/energy_pretrained" data.path="$data/mlearn_Si_train.extxyz.gz" \
  'data.fractions=[0.8,0.2,0.0]' data.num_workers=0 trainer.max_epochs=30 logger=none
time OMP_NUM_THREADS=1 python -m contrast.train task=energy encoder=schnet \
  hydra.run.dir="$out/energy_scratch" data.path="$data/mlearn_Si_train.extxyz.gz" \
  'data.fractions=[0.8,0.2,0.0]' data.num_workers=0 trainer.max_epochs=30 logger=none
