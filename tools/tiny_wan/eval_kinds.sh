#!/bin/sh
# Judge table of the trained model for dense, every attention kind and PAG/SoftPAG (eval_cpp.sh
# per row: held-out prompts, SEEDS seeds each, PSNR against the dense run of the same prompt and
# seed). The kinds are set to be sparse on the model's small token grid (64x64x17: 5x4x4 tokens).
# Usage: tools/tiny_wan/eval_kinds.sh [DITKIT] [MODEL] [SEEDS] > table.md
set -e
DITKIT=${1:-build/ditkit}
MODEL=${2:-models/wan-shapes}
SEEDS=${3:-2}
EVAL="$(dirname "$0")/eval_cpp.sh"
echo "| run | options | bg % | shape colour % | shape % | direction % | all % | PSNR vs dense |"
echo "|---|---|---|---|---|---|---|---|"
while IFS='|' read -r name opts <&3; do
  # shellcheck disable=SC2086 # opts is a list of options
  out=$("$EVAL" "$DITKIT" "$MODEL" "$SEEDS" $opts)
  echo "$out" | awk -v name="$name" -v opts="$opts" '
    /^C\+\+ held-out/ {gsub(/[%,]/, ""); bg = $6; fg = $8; sh = $10; dir = $12; all = $14}
    /^PSNR vs dense/ {psnr = $5 " dB"}
    END {printf "| %s | `%s` | %s | %s | %s | %s | %s | %s |\n", name, opts, bg, fg, sh, dir, all, psnr ? psnr : "—"}'
done 3<<'RUNS'
dense|
radial (density 0.36)|--attention radial:block_size=16,dense_layers=0,dense_timesteps=0
neighborhood 3x3x3 (0.34)|--attention neighborhood:kernel_size=3x3x3
neighborhood 5x3x3, every frame (0.56)|--attention neighborhood:kernel_size=5x3x3
GRAT-B groups 1x2x2 (0.52)|--attention grat:variant=b,group_shape=1x2x2
GRAT-X groups 1x2x2 (0.80)|--attention grat:variant=x,group_shape=1x2x2
sliding window 2x2 + full branch (0.56)|--attention sliding-window:train_tokens_hw=2x2
PAG scale 2 (middle layer)|--pag-scale 2
SoftPAG scale 2, u 0.5|--pag-scale 2 --softpag 0.5
RUNS
