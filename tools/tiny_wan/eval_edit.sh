#!/bin/sh
# `ditkit edit` on the trained model: for every held-out prompt, a source video from `ditkit t2v`
# (seed 1000 * index), then an edit of the shape colour to another palette colour (the mask from
# the attention on the colour word) judged against the target prompt, and the edit's PSNR/SSIM
# outside the edit region against the reconstruction of the source.
# Usage: tools/tiny_wan/eval_edit.sh [DITKIT] [MODEL] [edit options...]   (e.g. --consistency 1)
set -e
DITKIT=${1:-build/ditkit}
MODEL=${2:-models/wan-shapes}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
# the video size the model was trained at
SIZE=$(/usr/bin/python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['video']['width'])" "$MODEL/training.json")
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# source prompt | target prompt (the next colour of the palette that is neither shape nor background)
PYTHONPATH=$(dirname "$0") /usr/bin/python3 -c "
import data
names = list(data.COLOURS)
for fg, shape, d, bg in data.split()[1]:
    new = next(c for c in names[names.index(fg) + 1:] + names if c not in (fg, bg))
    print(data.prompt(fg, shape, d, bg) + '|' + data.prompt(new, shape, d, bg))" > "$DIR/pairs"
i=0
while IFS='|' read -r src dst <&3; do
  "$DITKIT" --threads 1 t2v --model "$MODEL" -p "$src" -W "$SIZE" -H "$SIZE" --frames 17 --steps 20 --sampler euler \
    --shift 3 --cfg 5 --seed $((1000 * i)) -o "$DIR/src.mp4" > /dev/null 2>&1
  "$DITKIT" --threads 1 edit --model "$MODEL" -i "$DIR/src.mp4" -s "$src" -t "$dst" --steps 20 --shift 3 "$@" \
    -o "$DIR/out.mp4" 2>/dev/null | grep "^round" >> "$DIR/metrics"
  "$DITKIT" judge "$DIR/out.mp4" --prompt "$dst" | tail -1 >> "$DIR/verdicts"
  i=$((i + 1))
done 3< "$DIR/pairs"
awk '{n++; all += ($3 == "4/4")} /background yes/ {bg++} /shape colour yes/ {fg++} /shape yes/ {sh++} /direction yes/ {dir++}
     END {printf "edited held-out videos (%d): new shape colour %.1f%%, background kept %.1f%%, direction kept %.1f%%, shape %.1f%%\n",
          n, 100*fg/n, 100*bg/n, 100*dir/n, 100*sh/n}' "$DIR/verdicts"
awk '{for (k = 1; k < NF; k++) { if ($k == "mask") {p += $(k+1); np++} if ($k == "ssim") {s += $(k+1); ns++} }}
     END {printf "outside the edit mask vs the reconstruction: mean PSNR %.2f dB, mean SSIM %.4f\n", p/np, s/ns}' "$DIR/metrics"
