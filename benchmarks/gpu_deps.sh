#!/usr/bin/env bash
# Puts what `python -m benchmarks.gpu` needs beyond a GPU machine's own packages into .gpu-deps/
# (git-ignored; benchmarks.gpu adds it to sys.path by itself). Run it here, where a package
# registry is reached, then carry .gpu-deps to the GPU machine, which reaches none:
#   - d2l 1.0.3, the book's functions (pure Python), without its old pinned dependencies;
#   - pycocotools for the mAP column, built for the GPU machine's CPython 3.12 (optional: without it
#     the TinySSD rows report the book's class error and bbox MAE only).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --no-deps --target .gpu-deps --upgrade d2l==1.0.3
python3 -m pip install --quiet --no-deps --target .gpu-deps --upgrade --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 pycocotools==2.0.11
du -sh .gpu-deps
