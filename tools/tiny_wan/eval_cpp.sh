#!/bin/sh
# Judge accuracy of the C++ `ditkit t2v` on the held-out prompts (MP4s judged by `ditkit judge`),
# with the seeds sample.py eval uses (1000 * combination index + s).
# Usage: tools/tiny_wan/eval_cpp.sh [DITKIT] [MODEL] [SEEDS] [t2v options...]
# (extra options, e.g. --attention KIND or --pag-scale S, compare attention kinds and hooks; each
# such video is also compared with the plain dense run of the same prompt and seed: PSNR)
set -e
DITKIT=${1:-build/ditkit}
MODEL=${2:-models/wan-shapes}
SEEDS=${3:-2}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
# the video size the model was trained at
SIZE=$(/usr/bin/python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['video']['width'])" "$MODEL/training.json")
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PYTHONPATH=$(dirname "$0") /usr/bin/python3 -c "
import data
for c in data.split()[1]: print(data.prompt(*c))" > "$DIR/prompts"
i=0
while read -r p <&3; do
  s=0
  while [ $s -lt "$SEEDS" ]; do
    run() {
      "$DITKIT" --threads 1 t2v --model "$MODEL" -p "$p" -W "$SIZE" -H "$SIZE" --frames 17 --steps 20 --sampler euler \
        --shift 3 --cfg 5 --seed $((1000 * i + s)) "$@" > /dev/null 2>&1
    }
    run "$@" -o "$DIR/v.mp4"
    if [ $# -gt 0 ]; then
      run -o "$DIR/dense.mp4"
      "$DITKIT" judge "$DIR/v.mp4" --reference "$DIR/dense.mp4" | grep psnr >> "$DIR/psnr"
    fi
    "$DITKIT" judge "$DIR/v.mp4" --prompt "$p" | tail -1 >> "$DIR/verdicts"
    s=$((s + 1))
  done
  i=$((i + 1))
done 3< "$DIR/prompts"
awk '{n++; all += ($3 == "4/4")} /background yes/ {bg++} /shape colour yes/ {fg++} /shape yes/ {sh++} /direction yes/ {dir++}
     END {printf "C++ held-out (%d videos): bg %.1f%%, fg %.1f%%, shape %.1f%%, direction %.1f%%, all %.1f%%\n",
          n, 100*bg/n, 100*fg/n, 100*sh/n, 100*dir/n, 100*all/n}' "$DIR/verdicts"
[ -f "$DIR/psnr" ] && awk '$4 != "inf" {s += $4; n++} $4 == "inf" {same++}
     END {printf "PSNR vs dense: mean %.2f dB over %d videos (%d identical)\n", n ? s / n : 0, n, same}' "$DIR/psnr"
exit 0
