#!/bin/bash
# Build what a lent GPU machine lacks, in git-ignored folders of this checkout (run once, here):
#   .whl/ : compressai 1.2.6 built for CPython 3.12 (PyPI has only its sdist), pytorch-msssim,
#           importlib_metadata, and diffusers 0.42.1 cut to the modules DPCD training imports
#   .gpu/minilm/ : the offline MiniLM packed in fp16 with only the scene-caption vocabulary rows
# The device tool's 64 MiB working-tree limit is why: the full wheel + fp32 MiniLM do not fit
# beside the preset. Then: device run `bash experiments/gpu/run.sh 560 128 3e-4 14` with
# carry [".whl", ".gpu"] (move benchmark/weights/judge, results/ and tests/ aside for the call).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for d in /.whl/ /.gpu/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
PY=.venv/bin/python
PY312=${PY312:-$(ls -d /root/.pyenv/versions/3.12*/bin/python 2>/dev/null | head -1)}
[ -x "$PY312" ] || { echo "need a CPython 3.12 (set PY312=/path/to/python3.12) to build compressai" >&2; exit 2; }
rm -rf .whl .gpu/minilm /tmp/sdgic-gpu && mkdir -p .whl .gpu /tmp/sdgic-gpu
$PY -m pip download -q --no-deps -d /tmp/sdgic-gpu compressai==1.2.6
$PY312 -m venv /tmp/sdgic-gpu/py312 && /tmp/sdgic-gpu/py312/bin/pip install -q pybind11 setuptools wheel
tar -C /tmp/sdgic-gpu -xzf /tmp/sdgic-gpu/compressai-1.2.6.tar.gz
/tmp/sdgic-gpu/py312/bin/pip wheel -q --no-deps --no-build-isolation -w .whl /tmp/sdgic-gpu/compressai-1.2.6
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d /tmp/sdgic-gpu diffusers==0.42.1 importlib_metadata pytorch_msssim==1.0.0
mv /tmp/sdgic-gpu/importlib_metadata-*.whl /tmp/sdgic-gpu/pytorch_msssim-*.whl .whl/
$PY experiments/gpu/slim_diffusers.py /tmp/sdgic-gpu/diffusers-0.42.1-py3-none-any.whl .whl/diffusers_slim.zip
$PY experiments/gpu/pack_minilm.py .gpu/minilm
du -cb .whl .gpu | tail -1
