#!/bin/bash
# DPCD RSRT-stage training on a lent GPU machine (after experiments/gpu/prepare.sh, here).
# Usage (device tool): bash experiments/gpu/run.sh BUDGET_S BATCH LR WORKERS; returns the
# exported preset as 15 MiB tar parts + train.log in $OUT (cat parts | tar -x).
T0=$(date +%s); BUDGET=${1:-540}; BATCH=${2:-128}; LR=${3:-3e-4}; WORKERS=${4:-14}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
python3 -c "import zipfile; zipfile.ZipFile('.whl/diffusers_slim.zip').extractall('/tmp/site')" || exit 3
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
python3 -c "import torch, transformers, diffusers, compressai, skimage; print(torch.__version__, transformers.__version__, diffusers.__version__, compressai.__version__, skimage.__version__, torch.cuda.is_available())" || exit 4
python3 experiments/gpu/expand_minilm.py .gpu/minilm /tmp/minilm || exit 5
cp -r codec/weights/scenes-64 /tmp/export
NOW=$(date +%s); LEFT=$(( T0 + BUDGET - NOW - 75 ))
MIN=$(python3 -c "print(max(0.5, $LEFT / 60))")
echo "setup took $((NOW - T0)) s; training for $MIN min"
python3 - <<PY 2>&1 | grep -v "Loading weights\|it/s\]" | tail -40
import time, torch
t = time.time()
from training.dpcd import train_dpcd
train_dpcd("/tmp/run", stage="rsrt", steps=1000000, batch_size=$BATCH, lr=$LR,
           init="codec/weights/scenes-64", captioner="benchmark/weights/captioner",
           export="/tmp/export", device="cuda", workers=$WORKERS, bf16=True,
           text_encoder="/tmp/minilm", save_every=1000, sample_every=0, max_minutes=$MIN)
print("train_dpcd returned after", round(time.time() - t), "s; peak GPU GiB",
      round(torch.cuda.max_memory_allocated() / 2**30, 2))
PY
echo "--- train.log"; cat /tmp/run/train.log | head -3; grep "^step" /tmp/run/train.log | awk 'NR%10==0'; tail -3 /tmp/run/train.log
cp /tmp/run/train.log $OUT/train.log
tar -C /tmp -cf /tmp/export.tar export && split -b 15M /tmp/export.tar $OUT/export.tar.part-
sha256sum /tmp/export.tar | tee $OUT/export.sha256
ls -la $OUT; echo "total $(( $(date +%s) - T0 )) s"
