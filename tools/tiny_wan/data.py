"""Synthetic videos of one coloured shape moving in a direction over a coloured background, with
their prompts ('a red circle moving left on a blue background'). Deterministic: a video is a
function of its attributes and a seed. A fixed set of attribute combinations is held out of
training for the judge's accuracy numbers.
"""
import itertools
import random

import numpy as np

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "white": (235, 235, 235),
    "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
HELD_OUT_FRACTION = 0.1
SPLIT_SEED = 5


def prompt(fg, shape, direction, bg):
    return f"a {fg} {shape} moving {direction} on a {bg} background"


def combinations():
    """Every (fg, shape, direction, bg) with fg != bg, in a fixed order."""
    return [(fg, s, d, bg) for fg, s, d, bg in itertools.product(COLOURS, SHAPES, DIRECTIONS, COLOURS) if fg != bg]


def split():
    """(train, held_out) combinations; every colour, shape and direction stays in training."""
    combos = combinations()
    rng = random.Random(SPLIT_SEED)
    held = set(rng.sample(range(len(combos)), int(len(combos) * HELD_OUT_FRACTION)))
    return [c for i, c in enumerate(combos) if i not in held], [c for i, c in enumerate(combos) if i in held]


def shape_mask(shape, cx, cy, r, size, supersample=2):
    """Anti-aliased coverage in [0, 1] of a shape of half-size r centred at (cx, cy)."""
    n = size * supersample
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / supersample
    dx, dy = x - cx, y - cy
    if shape == "circle":
        m = dx * dx + dy * dy <= r * r
    elif shape == "square":
        m = (np.abs(dx) <= r * 0.9) & (np.abs(dy) <= r * 0.9)
    else:  # upright triangle: apex at the top, base at the bottom
        m = (dy <= r * 0.85) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    return m.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def video(fg, shape, direction, bg, seed, size=64, frames=17):
    """uint8 [frames, size, size, 3]. Start position and speed vary with the seed."""
    rng = np.random.default_rng(seed)
    r = size * rng.uniform(0.17, 0.22)
    travel = size * rng.uniform(0.32, 0.40)
    ux, uy = DIRECTIONS[direction]
    along = rng.uniform(-0.05, 0.05) * size
    across = rng.uniform(0.3, 0.7) * size
    # Centre of the path at the middle of the image (plus jitter), going from -travel/2 to +travel/2.
    c0 = size / 2 + along
    out = np.empty((frames, size, size, 3), np.uint8)
    fgc, bgc = np.array(COLOURS[fg], np.float32), np.array(COLOURS[bg], np.float32)
    for f in range(frames):
        s = c0 + travel * (f / (frames - 1) - 0.5)
        cx, cy = (s, across) if ux else (across, s)
        if ux < 0 or uy < 0:
            cx, cy = (2 * c0 - cx, cy) if ux else (cx, 2 * c0 - cy)
        m = shape_mask(shape, cx, cy, r, size)[..., None]
        out[f] = np.round(m * fgc + (1 - m) * bgc).astype(np.uint8)
    return out


def to_model(v):
    """uint8 [F, H, W, 3] -> float32 [3, F, H, W] in [-1, 1]."""
    return (v.astype(np.float32) / 127.5 - 1.0).transpose(3, 0, 1, 2)
