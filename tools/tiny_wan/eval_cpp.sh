#!/bin/sh
# Judge accuracy of the C++ `ditkit t2v` on the held-out prompts (MP4s judged by `ditkit judge`),
# with the seeds sample.py eval uses (1000 * combination index + s).
# Usage: tools/tiny_wan/eval_cpp.sh [DITKIT] [MODEL] [SEEDS] [t2v options...]
# (extra options, e.g. --attention KIND or --pag-scale S, compare attention kinds and hooks)
set -e
DITKIT=${1:-build/ditkit}
MODEL=${2:-models/wan-shapes}
SEEDS=${3:-2}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PYTHONPATH=$(dirname "$0") /usr/bin/python3 -c "
import data
for c in data.split()[1]: print(data.prompt(*c))" > "$DIR/prompts"
i=0
while read -r p <&3; do
  s=0
  while [ $s -lt "$SEEDS" ]; do
    "$DITKIT" --threads 1 t2v --model "$MODEL" -p "$p" -W 32 -H 32 --frames 17 --steps 20 --sampler euler \
      --shift 3 --cfg 5 --seed $((1000 * i + s)) "$@" -o "$DIR/v.mp4" > /dev/null 2>&1
    "$DITKIT" judge "$DIR/v.mp4" --prompt "$p" | tail -1 >> "$DIR/verdicts"
    s=$((s + 1))
  done
  i=$((i + 1))
done 3< "$DIR/prompts"
awk '{n++; all += ($3 == "4/4")} /background yes/ {bg++} /shape colour yes/ {fg++} /shape yes/ {sh++} /direction yes/ {dir++}
     END {printf "C++ held-out (%d videos): bg %.1f%%, fg %.1f%%, shape %.1f%%, direction %.1f%%, all %.1f%%\n",
          n, 100*bg/n, 100*fg/n, 100*sh/n, 100*dir/n, 100*all/n}' "$DIR/verdicts"
