#!/usr/bin/env bash
# The GPU measurements, as ONE command on the lent GPU machine (device tool), with the wheels from
# bench/gpu_wheels.sh carried in .whl/. Writes JSON and markdown per part into $OUT (or ./gpu-check).
# Full-size architectures with random weights: real timings and memory, no downloads; every stage row
# has its plain diffusers baseline in the same run. Seconds of runs cut to --max-steps are scaled.
#
# Parts run in order of importance, each under its own timeout, all within one deadline (GPU_CHECK_SECONDS,
# default 530 s; the device tool stops a call at 600 s). The bench writes its JSON after every row, so a
# part cut short keeps what it finished (its markdown is rendered from that); a part that would start with
# under a minute left is skipped and says so in summary.txt. Estimates are for one H200.
#   engines         LTX-Video 2B 768x512x121 and SkyReels-V2 DF 1.3B 960x544x97 vs plain diffusers (3 steps run)
#   wan             Wan 2.1 FLF2V 14B 1280x720x81 vs plain diffusers: 2 steps run, no warm-up (a step is ~30 s)
#   rife            RIFE at 1080p, published network size, random weights: speed and peak GPU memory (~30 s)
#   engine-budgets  LTX and SkyReels under 8/12/16/24 GB (2 steps run): takes what is left of the first call
# The rest does not fit after those (the default list still tries them, and skips what has no time left):
# run them in later calls, PARTS="stages budgets" bash bench/gpu_check.sh, then PARTS="wan-budgets fast-paths",
# then PARTS=ltx13b.
#   wan-budgets     Wan under 24 and 8 GB (group offload; at 8 GB what the planner picks: capped frames, fp8), 2 steps run
#   stages          SDXL, SVD-XT, CogVideoX vs plain diffusers (10 steps run) + the whole 10 s 1080p30 video
#   budgets         SDXL, SVD-XT, CogVideoX under 8/12/16/24 GB, and the whole video at 8 GB
#   fast-paths      bf16, SDPA backends, compile, channels_last, VAE tiling, caches, resident, NVENC (old engines)
#   ltx13b          LTX-Video 13B distilled (quick preset) 768x512x121, 8 steps without CFG, vs plain diffusers
#                   (3 steps run): builds 19 B parameters (38 GB), a step is 171 TFLOP (~0.3 s); ~90 s, not measured
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-530}))
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi; python3 -c "import torch, diffusers; print(torch.__version__, diffusers.__version__, torch.cuda.get_device_name())"; } \
  > "$out/machine.txt" 2>&1
run() {  # name, seconds, bench arguments...: at most its own limit, and never past the deadline
  local name=$1 limit=$2 started=$SECONDS; shift 2
  local left=$((deadline - SECONDS - 15))  # 15 s: the kill grace and the markdown of a partial report
  if [ "$left" -lt 60 ]; then
    echo "$name: skipped, $((deadline - SECONDS)) s left (run it with PARTS=$name)" | tee -a "$out/summary.txt"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout -k 10 "$limit" python3 -m bench.pipeline --size full "$@" --out "$out/$name.json" --markdown \
    > "$out/$name.md" 2> "$out/$name.log"
  local rc=$?
  if [ ! -s "$out/$name.md" ] && [ -s "$out/$name.json" ]; then  # cut short: the rows it finished
    python3 -m bench.report "$out/$name.json" > "$out/$name.md" 2>> "$out/$name.log"
  fi
  echo "$name: exit $rc after $((SECONDS - started)) s (limit $limit s)" | tee -a "$out/summary.txt"
}
rife() {  # bench.interpolation at a small quality size (flow/minterpolate/blend rows too) + RIFE's 1080p figures
  local started=$SECONDS left=$((deadline - SECONDS - 15))
  if [ "$left" -lt 60 ]; then echo "rife: skipped (run it with PARTS=rife)" | tee -a "$out/summary.txt"; return; fi
  timeout -k 10 $((left < 120 ? left : 120)) python3 -m bench.interpolation --size 480x270 --seconds 1 \
    --rife-random-weights --json > "$out/rife.txt" 2> "$out/rife.log"
  echo "rife: exit $? after $((SECONDS - started)) s" | tee -a "$out/summary.txt"
}
only="--fast-paths none --no-video"
for part in ${PARTS:-engines wan rife engine-budgets wan-budgets stages budgets fast-paths ltx13b}; do
  case $part in
    rife) rife ;;
    engines) run engines 140 --stages motion --engines ltx,skyreels $only --budgets none --repeat 1 --max-steps 3 ;;
    wan) run wan 240 --stages motion --engines wan $only --budgets none --repeat 1 --warmup 0 --max-steps 2 ;;
    engine-budgets) run engine-budgets 150 --no-stage-rows --stages motion --engines ltx,skyreels $only \
      --budgets 8,12,16,24 --budget-video none --budget-steps 2 ;;
    wan-budgets) run wan-budgets 300 --no-stage-rows --stages motion --engines wan $only --budgets 24,8 \
      --budget-video none --budget-steps 2 ;;
    stages) run stages 300 --stages keyframes,motion,finish --engines svd,cogvideox --fast-paths none --budgets none \
      --repeat 1 --max-steps 10 ;;
    budgets) run budgets 220 --no-stage-rows --stages keyframes,motion --engines svd,cogvideox $only \
      --budgets 8,12,16,24 --budget-video 8 ;;
    fast-paths) run fast-paths 220 --no-stage-rows --stages keyframes,motion,finish --engines svd,cogvideox --no-video \
      --budgets none --fast-paths all --max-steps 10 --repeat 1 ;;
    ltx13b) run ltx13b 180 --stages motion --engines ltx13b $only --budgets none --repeat 1 --max-steps 3 ;;
    *) echo "$part: unknown part" | tee -a "$out/summary.txt" ;;
  esac
done
