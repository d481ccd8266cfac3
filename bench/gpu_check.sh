#!/usr/bin/env bash
# The GPU measurements, as ONE command on the lent GPU machine (device tool), with the wheels from
# bench/gpu_wheels.sh carried in .whl/. Writes JSON and markdown into $OUT (or ./gpu-check):
#   the stage table + whole 10 s 1080p30 video (plain diffusers baseline in the same run),
#   memory budgets 8/12/16/24 GB (a per-process memory fraction), and the fast paths.
# Full-size architectures with random weights: real timings and memory, no downloads.
# Not covered yet: LTX-Video, Wan and SkyReels full-size configs are not in bench/configs.py.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi; python3 -c "import torch, diffusers; print(torch.__version__, diffusers.__version__, torch.cuda.get_device_name())"; } \
  > "$out/machine.txt" 2>&1
run() {  # name, seconds, bench arguments...
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m bench.pipeline --size full "$@" --out "$out/$name.json" --markdown > "$out/$name.md" 2> "$out/$name.log"
  echo "$name: exit $?" | tee -a "$out/summary.txt"
}
run stages 300 --fast-paths none --budgets none --repeat 1
run budgets 150 --stages keyframes,motion --fast-paths none --budgets 8,12,16,24 --budget-video none --no-video
run fast-paths 120 --stages keyframes,motion --no-video --budgets none --fast-paths all --max-steps 10 --repeat 1
cat "$out/summary.txt"
