#!/usr/bin/env bash
# Run HERE (a machine with registry access), before bench/gpu_check.sh runs on the GPU machine, which
# reaches no registry. Downloads, for that machine's Python 3.12 on x86-64 Linux, the wheels its image lacks
# (its image has torch, transformers, accelerate, safetensors, tokenizers, sentencepiece, opencv, psutil,
# pillow and nvidia-ml-py; see .library/device/KINDS.md) into .whl/, which git ignores via .git/info/exclude.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
platforms=()
for n in 17 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform any -d .whl \
  diffusers==0.42.1 huggingface_hub==2.4.0 imageio-ffmpeg==0.8.1 ftfy==6.3.1 wcwidth spandrel==0.4.2 \
  httpx2 anyio h11 idna certifi sniffio filelock fsspec regex pyyaml tqdm einops
du -sh .whl
