"""Judge for generated shape videos: background colour, shape colour, shape kind and motion
direction, by simple image analysis (deterministic). Also scores a prompt.

Usage: /usr/bin/python3 tools/tiny_wan/judge.py VIDEO.npy|VIDEO.mp4|'frame_%02d.png' [--prompt "..."]
"""
import re
import sys

import numpy as np

from data import COLOURS, DIRECTIONS, SHAPES

_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], np.float32)


def nearest_colour(rgb):
    return _NAMES[int(np.argmin(((_PALETTE - np.asarray(rgb, np.float32)) ** 2).sum(1)))]


def judge(frames):
    """frames uint8 [F, H, W, 3] -> dict(bg, fg, shape, direction); values None when not found."""
    v = frames.astype(np.float32)
    f, h, w, _ = v.shape
    border = np.concatenate([v[:, 0], v[:, -1], v[:, :, 0], v[:, :, -1]], axis=1).reshape(-1, 3)
    bg_rgb = np.median(border, axis=0)
    result = {"bg": nearest_colour(bg_rgb), "fg": None, "shape": None, "direction": None}
    # Shape pixels: clearly away from the background colour.
    mask = np.sqrt(((v - bg_rgb) ** 2).sum(-1)) > 60
    if mask.sum() < f * 4:
        return result
    result["fg"] = nearest_colour(np.median(v[mask], axis=0))
    # Kind: fill ratio of the bounding box, median over frames where the shape is well inside.
    ratios, xs, ys, ts = [], [], [], []
    for t in range(f):
        yy, xx = np.nonzero(mask[t])
        if len(xx) < 4:
            continue
        xs.append(xx.mean()), ys.append(yy.mean()), ts.append(t)
        x0, x1, y0, y1 = xx.min(), xx.max(), yy.min(), yy.max()
        if x0 > 0 and y0 > 0 and x1 < w - 1 and y1 < h - 1:
            ratios.append(len(xx) / ((x1 - x0 + 1) * (y1 - y0 + 1)))
    if ratios:
        r = float(np.median(ratios))
        result["shape"] = "square" if r > 0.88 else "circle" if r > 0.65 else "triangle"
    # Direction: slope of the centroid track along the dominant axis (pixels per frame).
    if len(ts) >= 2:
        sx, sy = np.polyfit(ts, xs, 1)[0], np.polyfit(ts, ys, 1)[0]
        if max(abs(sx), abs(sy)) * (f - 1) >= 0.1 * w:
            result["direction"] = ("right" if sx > 0 else "left") if abs(sx) >= abs(sy) else ("down" if sy > 0 else "up")
    return result


def parse_prompt(p):
    m = re.fullmatch(r"a (\w+) (\w+) moving (\w+) on a (\w+) background", p.strip())
    assert m and m[1] in COLOURS and m[2] in SHAPES and m[3] in DIRECTIONS and m[4] in COLOURS, p
    return {"fg": m[1], "shape": m[2], "direction": m[3], "bg": m[4]}


def read_mp4(path):
    import subprocess
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", path], capture_output=True, text=True, check=True).stdout
    w, h = map(int, probe.strip().split(","))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def read_pngs(pattern):
    import os
    from PIL import Image
    frames, i = [], 0
    while os.path.exists(pattern % i):
        frames.append(np.array(Image.open(pattern % i).convert("RGB")))
        i += 1
    return np.stack(frames)


def main():
    args = sys.argv[1:]
    p = args[args.index("--prompt") + 1] if "--prompt" in args else None
    path = args[0]
    frames = np.load(path) if path.endswith(".npy") else read_pngs(path) if "%" in path else read_mp4(path)
    r = judge(frames)
    print(r)
    if p:
        want = parse_prompt(p)
        print({k: r[k] == want[k] for k in want})


if __name__ == "__main__":
    main()
