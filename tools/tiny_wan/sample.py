"""Python text-to-video sampling with the trained model in models/wan-shapes (as `ditkit t2v` runs it:
umT5 contexts for prompt and negative prompt, Euler flow steps on Wan's shifted sigmas with CFG,
VAE decode), and the judge's accuracy over the held-out prompt combinations.

Usage: /usr/bin/python3 tools/tiny_wan/sample.py eval [--seeds 2] [--steps 20] [--cfg 5] [--train]
       /usr/bin/python3 tools/tiny_wan/sample.py gen "PROMPT" --seed N OUT.npy
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import judge  # noqa: E402
import modules  # noqa: E402
import st  # noqa: E402
import train  # noqa: E402


class Pipeline:
    def __init__(self, folder=train.OUT):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        self.dit = modules.WanModel(**cfg).eval()
        self.dit.load_state_dict(st.load(os.path.join(folder, "diffusion_pytorch_model.safetensors")))
        t5w = {k: v.float() for k, v in torch.load(os.path.join(folder, "models_t5_umt5-xxl-enc-bf16.pth")).items()}
        self.tok = train.Tokenizer(os.path.join(folder, "google/umt5-xxl/spiece.model"))
        self.t5 = modules.T5Encoder(**dict(train.T5_CONFIG, vocab=t5w["token_embedding.weight"].shape[0])).eval()
        self.t5.load_state_dict(t5w)
        self.vae = modules.WanVAE(**train.VAE_CONFIG, latent_mean=train.OFFICIAL_MEAN, latent_std=train.OFFICIAL_STD).eval()
        self.vae.load_state_dict(torch.load(os.path.join(folder, "Wan2.1_VAE.pth")))

    @torch.no_grad()
    def __call__(self, prompts, seeds, steps=20, cfg=5.0, shift=train.SHIFT, size=train.SIZE, frames=train.FRAMES):
        """uint8 videos [B, F, H, W, 3] for prompts and torch CPU generator seeds."""
        b = len(prompts)
        cond = train.encode_text(self.t5, self.tok, prompts)
        uncond = train.encode_text(self.t5, self.tok, [train.NEG_PROMPT] * b)
        shape = (16, (frames - 1) // 4 + 1, size // 8, size // 8)
        x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        s = np.linspace(1.0, 0.0, steps + 1)[:steps]
        s = shift * s / (1 + (shift - 1) * s)
        timesteps, sigmas = (s * 1000).astype(np.int64), np.append(s, 0.0).astype(np.float32)
        for i in range(steps):
            t = torch.full((b,), float(timesteps[i]), dtype=torch.float64)
            v = self.dit(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
            vc, vu = v.chunk(2)
            x = x + float(sigmas[i + 1] - sigmas[i]) * (vu + cfg * (vc - vu))
        video = self.vae.decode(x)
        return ((video + 1) / 2 * 255).to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def evaluate(pipe, combos, seeds, **kw):
    keys = ("bg", "fg", "shape", "direction")
    hits = {k: 0 for k in keys + ("all",)}
    n = 0
    for i, c in enumerate(combos):
        vids = pipe([data.prompt(*c)] * len(seeds), [1000 * i + s for s in seeds], **kw)
        want = dict(fg=c[0], shape=c[1], direction=c[2], bg=c[3])
        for v in vids:
            r = judge.judge(v)
            ok = {k: r[k] == want[k] for k in keys}
            for k in keys:
                hits[k] += ok[k]
            hits["all"] += all(ok.values())
            n += 1
    return {k: round(100.0 * h / n, 1) for k, h in hits.items()}, n


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["eval", "gen"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--shift", type=float, default=train.SHIFT)
    ap.add_argument("--train", action="store_true", help="also score training combinations")
    ap.add_argument("--model", default=train.OUT)
    a = ap.parse_args()
    pipe = Pipeline(a.model)
    kw = dict(steps=a.steps, cfg=a.cfg, shift=a.shift)
    if a.cmd == "gen":
        v = pipe([a.args[0]], [a.seed], **kw)[0]
        np.save(a.args[1], v)
        print(judge.judge(v))
        return
    tr, held = data.split()
    t0 = time.time()
    acc, n = evaluate(pipe, held, list(range(a.seeds)), **kw)
    print(f"held-out ({n} videos, {time.time() - t0:.0f} s):", acc, kw)
    if a.train:
        acc, n = evaluate(pipe, tr[::9], list(range(a.seeds)), **kw)
        print(f"train subset ({n} videos):", acc)


if __name__ == "__main__":
    main()
