#!/bin/sh
# `ditkit style` on the trained model: for every held-out prompt (the reference, row 0) a second
# held-out prompt with another shape colour and background (row 1), at each share strength.
# Row 1 is judged against its own prompt (its background and direction should stay) and against
# its prompt with the reference's shape colour (the style, i.e. the colour, should transfer).
# Usage: tools/tiny_wan/eval_style.sh [DITKIT] [MODEL] [STRENGTHS] [style options...]
set -e
DITKIT=${1:-build/ditkit}
MODEL=${2:-models/wan-shapes}
STRENGTHS=${3:-0 0.3 1}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
# the video size the model was trained at
SIZE=$(/usr/bin/python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['video']['width'])" "$MODEL/training.json")
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# reference | target | target with the reference's shape colour
PYTHONPATH=$(dirname "$0") /usr/bin/python3 -c "
import data
held = data.split()[1]
for i, (fg, shape, d, bg) in enumerate(held):
    t = next(c for c in held[i + 1:] + held[:i] if c[0] not in (fg, bg) and c[3] not in (fg, bg))
    print(data.prompt(fg, shape, d, bg) + '|' + data.prompt(*t) + '|' + data.prompt(fg, t[1], t[2], t[3]))" > "$DIR/triples"
for s in $STRENGTHS; do
  i=0
  while IFS='|' read -r ref target styled <&3; do
    "$DITKIT" --threads 1 style --model "$MODEL" -p "$ref" -p "$target" -W "$SIZE" -H "$SIZE" --frames 17 --steps 20 \
      --sampler euler --shift 3 --cfg 5 --seed $((1000 * i)) --share-strength "$s" "$@" -o "$DIR/out" > /dev/null 2>&1
    "$DITKIT" judge "$DIR/out/001.mp4" --prompt "$target" | tail -1 >> "$DIR/own_$s"
    "$DITKIT" judge "$DIR/out/001.mp4" --prompt "$styled" | tail -1 >> "$DIR/styled_$s"
    i=$((i + 1))
  done 3< "$DIR/triples"
  own=$(awk '/background yes/ {bg++} /direction yes/ {dir++} /shape colour yes/ {fg++} END {printf "own background %.1f%%, own direction %.1f%%, own shape colour %.1f%%", 100*bg/NR, 100*dir/NR, 100*fg/NR}' "$DIR/own_$s")
  took=$(awk '/shape colour yes/ {fg++} END {printf "%.1f%% (%d videos)", 100*fg/NR, NR}' "$DIR/styled_$s")
  echo "share strength $s: row 1 took the reference's shape colour $took; $own"
done
