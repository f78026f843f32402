"""Trains models/wan-shapes: a tiny text-to-video model with the exact Wan2.1 architecture and key
names, on the synthetic shape videos of data.py. One command re-creates it (deterministic seeds):

  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=1 \
    nice -n 19 /usr/bin/python3 tools/tiny_wan/train.py all

Environment: TINY_WAN_WORK (the work folder, default /tmp/tiny_wan), TINY_WAN_OUT (the exported
model, default models/wan-shapes), TINY_WAN_SIZE (video side in pixels, default 64: the shipped model;
32 trains faster and judges worse on held-out shapes and directions).

Stages (each can be run alone; they pass results through WORK):
  tokenizer  SentencePiece unigram (Wan/HF-T5 ids: pad 0, eos 1, unk 2, byte fallback)
  vae        Wan VAE anchored to a fixed linear (PCA) codec with the Wan latent layout: the
             decoder learns PCA latent -> video, the encoder video -> PCA latent (single
             frames, then 9-frame clips); the latents are already normalised for the official
             latent_mean / latent_std
  latents    the training videos' PCA latents (what the encoder gives), for the DiT
  vae_more   more VAE clip steps (can run beside the DiT stage)
  dit        WanModel with Wan's flow-matching objective (shifted sigmas, velocity target), the
             umT5 encoder trained with it; captions dropped to '' and to the default negative prompt
  export     writes the official Wan2.1 folder layout, config.json, README.md and SHA256SUMS
"""
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import modules  # noqa: E402
import st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
WORK = os.environ.get("TINY_WAN_WORK", "/tmp/tiny_wan")
OUT = os.environ.get("TINY_WAN_OUT", os.path.join(ROOT, "models/wan-shapes"))

SIZE, FRAMES = int(os.environ.get("TINY_WAN_SIZE", "64")), 17
VIDEOS_PER_COMBO = 6
TEXT_LEN = 32
# wan/configs/shared_config.py sample_neg_prompt.
NEG_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
              "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
              "杂乱的背景，三条腿，背景人很多，倒着走")
OFFICIAL_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                 0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
OFFICIAL_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

VAE_CONFIG = dict(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0)
T5_CONFIG = dict(vocab=None, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2, num_buckets=32,
                 shared_pos=False, dropout=0.1)
DIT_CONFIG = dict(_class_name="WanModel", _diffusers_version="0.30.0", model_type="t2v", patch_size=[1, 2, 2],
                  text_len=TEXT_LEN, in_dim=16, dim=128, ffn_dim=512, freq_dim=256, text_dim=64, out_dim=16,
                  num_heads=4, num_layers=4, window_size=[-1, -1], qk_norm=True, cross_attn_norm=True, eps=1e-6)

STEPS = dict(vae_images=1200, vae_clips=300, vae_more=300, dit=5000, dit_stop=5000)
# dit: length of the learning-rate schedule; dit_stop: the step of the shipped checkpoint.
SHIFT = 3.0  # training and suggested sampling shift for this small latent


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def work(name):
    os.makedirs(WORK, exist_ok=True)
    return os.path.join(WORK, name)


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


# ------------------------------------------------------------------ data

def videos():
    """Training videos uint8 [N, F, H, W, 3] and their combinations (cached in WORK)."""
    path = work("videos.npz")
    train, _ = data.split()
    combos = [c for c in train for _ in range(VIDEOS_PER_COMBO)]
    if not os.path.exists(path):
        v = np.stack([data.video(*c, seed=1000 + i, size=SIZE, frames=FRAMES) for i, c in enumerate(combos)])
        np.savez(path, v=v)
    return np.load(path)["v"], combos


def to_model(v):
    """uint8 [B, F, H, W, 3] -> float [B, 3, F, H, W] in [-1, 1]."""
    return torch.from_numpy(v).float().div(127.5).sub(1.0).permute(0, 4, 1, 2, 3).contiguous()


# ------------------------------------------------------------------ tokenizer

def stage_tokenizer():
    import sentencepiece as spm
    corpus = work("corpus.txt")
    # The prompts alone are too uniform for the unigram trainer (it keeps sub-word pieces); random
    # word sequences make every prompt word one piece.
    words = sorted({w for c in data.combinations() for w in data.prompt(*c).split()})
    rng = np.random.default_rng(0)
    with open(corpus, "w") as f:
        for c in data.combinations():
            f.write(data.prompt(*c) + "\n")
        for _ in range(3000):
            f.write(" ".join(rng.choice(words, rng.integers(1, 13))) + "\n")
        f.write(NEG_PROMPT + "\n")
    # The model file records its input and prefix paths: relative ones keep it the same in any WORK.
    cwd = os.getcwd()
    os.chdir(WORK)
    try:
        spm.SentencePieceTrainer.train(input="corpus.txt", model_prefix="spiece", vocab_size=320, model_type="unigram",
                                       character_coverage=0.99, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                       byte_fallback=True, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    finally:
        os.chdir(cwd)
    log("tokenizer:", spm.SentencePieceProcessor(model_file=work("spiece.model")).vocab_size(), "pieces")


class Tokenizer:
    """HF-T5 conventions as the Wan pipeline uses them: pieces, eos, right-pad to TEXT_LEN."""

    def __init__(self, path):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=path)

    def __call__(self, prompts):
        ids = torch.zeros(len(prompts), TEXT_LEN, dtype=torch.long)
        for i, p in enumerate(prompts):
            pieces = self.sp.encode(" ".join(p.split()))[:TEXT_LEN - 1] + [1]
            ids[i, :len(pieces)] = torch.tensor(pieces)
        return ids, (ids != 0).long()


def encode_text(t5, tok, prompts):
    """Contexts [B, TEXT_LEN, dim], rows past each prompt's length zeroed (= trimmed then padded)."""
    ids, mask = tok(prompts)
    return t5(ids, mask) * mask[..., None]


# ------------------------------------------------------------------ VAE

def recon_loss(y, x):
    # The shape covers a few % of the pixels: weight pixels that differ from the background.
    bg = x[:, :, :, :1, :1]
    # Without a strong extra squared error on the shape, the flat background colour is a minimum
    # the VAE does not leave.
    m = ((x - bg).abs().amax(1, keepdim=True) > 0.05).float()
    d = y - x
    return ((1.0 + 3.0 * m) * (d.pow(2) + d.abs())).mean() + 10.0 * (m * d.pow(2)).mean()


class PcaCodec:
    """A fixed linear codec with the Wan latent layout, the anchor of the VAE training: latent
    frame 0 codes video frame 0, latent frame k frames 4k-3..4k; each 8x8 pixel cell becomes the
    top 16 principal components of its pixels (whitened), i.e. already normalised latents."""

    def __init__(self, v):
        x = to_model(v[:512])
        self.first = self._fit(self._cells(x[:, :, :1]))
        self.rest = self._fit(self._cells(x[:, :, 1:]))

    @staticmethod
    def _cells(x):
        """[B, 3, 4t, H, W] -> [B, t, H/8, W/8, 3*4*64] (t frames of 4, or 1 frame)."""
        b, c, f, h, w = x.shape
        ft = 4 if f % 4 == 0 and f > 1 else 1
        x = x.reshape(b, c, f // ft, ft, h // 8, 8, w // 8, 8)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, f // ft, h // 8, w // 8, -1)

    @staticmethod
    def _fit(cells):
        flat = cells.reshape(-1, cells.shape[-1]).double()
        mean = flat.mean(0)
        _, sv, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        scale = sv[:16] / math.sqrt(flat.shape[0])
        return mean.float(), (vt[:16] / scale[:, None]).float()

    def __call__(self, x):
        """Video [B, 3, 1+4k, H, W] -> normalised latent [B, 16, 1+k, H/8, W/8]."""
        parts = [self._cells(x[:, :, :1]), self._cells(x[:, :, 1:])] if x.shape[2] > 1 else [self._cells(x)]
        out = [(p - m) @ proj.T for p, (m, proj) in zip(parts, (self.first, self.rest))]
        return torch.cat(out, dim=1).permute(0, 4, 1, 2, 3).contiguous()


def train_vae(vae, codec, v, phases, seed):
    """phases: (steps, frames per sample (1 or 9), batch, lr). Decoder: PCA latent (+ noise, as the
    DiT's samples are not exact) -> video; encoder: video -> PCA latent. Both are plain
    regressions, which cannot collapse to a flat colour the way end-to-end training of this deep,
    narrow VAE does."""
    rng = np.random.default_rng(seed)
    probe = to_model(v[::97])
    t0, done = time.time(), 0
    opt = torch.optim.Adam(vae.parameters(), lr=phases[0][3])
    for steps, frames, batch, lr in phases:
        for group in opt.param_groups:
            group["lr"] = lr
        p = probe[:, :, :frames]
        for step in range(steps):
            # Single frames: each from its own time; clips: one start for the batch.
            idx = rng.integers(0, len(v), batch)
            start = rng.integers(0, FRAMES - frames + 1, batch) if frames == 1 else [rng.integers(0, FRAMES - frames + 1)] * batch
            x = to_model(np.stack([v[i, s:s + frames] for i, s in zip(idx, start)]))
            z = codec(x)
            loss = recon_loss(vae.decode_raw(z + 0.05 * torch.randn_like(z)), x) + (vae.encode(x) - z).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == steps - 1:
                with torch.no_grad():
                    zp = codec(p)
                    pd, pe = recon_loss(vae.decode_raw(zp), p).item(), (vae.encode(p) - zp).pow(2).mean().item()
                    flat = recon_loss(p[:, :, :, :1, :1].expand_as(p), p).item()
                log(f"vae {frames}-frame step {done + step} probe: decode {pd:.4f} encode {pe:.4f} "
                    f"(background only {flat:.4f}; {time.time() - t0:.0f} s)")
        done += steps


def stage_vae():
    """Single frames first (cheap; the image path is frame 0 of every video), then 9-frame clips
    from anywhere in the videos (the convs are causal, so any start is a valid clip)."""
    seed_all(0)
    v, _ = videos()
    vae = modules.WanVAE(**VAE_CONFIG, latent_mean=OFFICIAL_MEAN, latent_std=OFFICIAL_STD)
    train_vae(vae, PcaCodec(v), v, [(STEPS["vae_images"], 1, 8, 2e-3), (STEPS["vae_clips"], 9, 4, 1e-3)], seed=0)
    torch.save(vae.state_dict(), work("vae.pt"))


def stage_vae_more():
    """Whole 17-frame videos: 9-frame clips leave the later latent frames (whose causal receptive
    field no longer reaches the zero padding) untrained. Runs beside the DiT stage, which does
    not need the VAE."""
    seed_all(2)
    v, _ = videos()
    vae = load_vae()
    train_vae(vae, PcaCodec(v), v, [(STEPS["vae_more"], FRAMES, 2, 1e-3)], seed=2)
    torch.save(vae.state_dict(), work("vae.pt"))


def load_vae():
    vae = modules.WanVAE(**VAE_CONFIG, latent_mean=OFFICIAL_MEAN, latent_std=OFFICIAL_STD)
    vae.load_state_dict(torch.load(work("vae.pt")))
    return vae


def stage_latents():
    """The DiT's training latents: the PCA codec's, which the VAE encoder is trained to give."""
    v, _ = videos()
    codec = PcaCodec(v)
    z = torch.cat([codec(to_model(v[i:i + 64])) for i in range(0, len(v), 64)])
    torch.save(z, work("latents.pt"))
    log("latents", tuple(z.shape), "mean", round(z.mean().item(), 3), "std", round(z.std().item(), 3))


# ------------------------------------------------------------------ DiT

def make_t5():
    tok = Tokenizer(work("spiece.model"))
    cfg = dict(T5_CONFIG, vocab=tok.sp.vocab_size())
    return modules.T5Encoder(**cfg), tok, cfg


def shifted(sigma, shift):
    return shift * sigma / (1 + (shift - 1) * sigma)


def stage_dit():
    seed_all(3)
    _, combos = videos()
    z = torch.load(work("latents.pt"))
    t5, tok, _ = make_t5()
    dit = modules.WanModel(**DIT_CONFIG)
    torch.nn.init.zeros_(dit.head.head.weight)
    torch.nn.init.zeros_(dit.head.head.bias)
    params = list(dit.parameters()) + list(t5.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    total = STEPS["dit"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))))
    prompts = [data.prompt(*c) for c in combos]
    rng = np.random.default_rng(3)
    t0, avg = time.time(), None
    for step in range(STEPS["dit_stop"]):
        idx = rng.integers(0, len(z), 32)
        drop = rng.random(32)
        # Caption dropout: 10% empty prompt, 10% the default negative prompt (both act as 'uncond').
        texts = ["" if d < 0.1 else NEG_PROMPT if d < 0.2 else prompts[i] for i, d in zip(idx, drop)]
        x0 = z[idx]
        noise = torch.randn_like(x0)
        sigma = shifted(torch.rand(32, dtype=torch.float64), SHIFT)
        s = sigma.float().view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * noise
        pred = dit(xt, sigma * 1000, encode_text(t5, tok, texts))
        loss = (pred - (noise - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % 100 == 0:
            log(f"dit step {step} loss {avg:.4f} lr {sched.get_last_lr()[0]:.2e} ({time.time() - t0:.0f} s)")
        if step % 1000 == 999 or step == STEPS["dit_stop"] - 1:
            torch.save({"dit": dit.state_dict(), "t5": t5.state_dict(), "step": step + 1}, work("dit.pt"))
    log(f"dit done in {time.time() - t0:.0f} s")


# ------------------------------------------------------------------ export

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def to_bf16(t):
    """Round to bf16 (nearest even), as torch's .to(torch.bfloat16)."""
    return t.detach().float().contiguous().to(torch.bfloat16)


def stage_export():
    """The official Wan2.1 folder: config.json + diffusion_pytorch_model.safetensors (DiT),
    models_t5_umt5-xxl-enc-bf16.pth (umT5, bf16), Wan2.1_VAE.pth (f32), google/umt5-xxl/ (tokenizer)."""
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "google/umt5-xxl"))
    ck = torch.load(work("dit.pt"))
    cfg = {k: v for k, v in DIT_CONFIG.items()}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    st.save(os.path.join(OUT, "diffusion_pytorch_model.safetensors"), ck["dit"], {"format": "pt"})
    torch.save({k: to_bf16(v) for k, v in ck["t5"].items()}, os.path.join(OUT, "models_t5_umt5-xxl-enc-bf16.pth"))
    vae = load_vae()
    torch.save({k: v.detach().clone() for k, v in vae.state_dict().items()}, os.path.join(OUT, "Wan2.1_VAE.pth"))
    shutil.copy(work("spiece.model"), os.path.join(OUT, "google/umt5-xxl/spiece.model"))
    _, t5cfg = make_t5()[1:]
    info = {"t5": t5cfg, "vae": dict(VAE_CONFIG, latent_mean=OFFICIAL_MEAN, latent_std=OFFICIAL_STD),
            "video": {"width": SIZE, "height": SIZE, "frames": FRAMES}, "sampling": {"shift": SHIFT},
            "dit_steps": ck["step"], "train_steps": STEPS}
    with open(os.path.join(OUT, "training.json"), "w") as f:
        json.dump(info, f, indent=2)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(size=SIZE, frames=FRAMES, shift=SHIFT))
    files = sorted(os.path.relpath(os.path.join(d, n), OUT) for d, _, ns in os.walk(OUT) for n in ns)
    with open(os.path.join(OUT, "SHA256SUMS"), "w") as f:
        for name in files:
            f.write(f"{sha256(os.path.join(OUT, name))}  {name}\n")
    log("exported", OUT, sum(os.path.getsize(os.path.join(OUT, n)) for n in files), "bytes")


README = """# wan-shapes: a tiny trained Wan2.1 text-to-video model

Exact Wan2.1 architecture and key names (umT5 encoder + SentencePiece tokenizer, WanModel DiT,
Wan VAE) in the official folder layout, trained on synthetic videos of a coloured shape moving
over a coloured background: "a red circle moving left on a blue background" (colours red, green,
blue, yellow, white, black; shapes circle, square, triangle; directions left, right, up, down).
Made by `tools/tiny_wan/train.py all` (see there); `training.json` has the settings.

    build/ditkit t2v --model models/wan-shapes -p "a red circle moving left on a blue background" \\
        -W {size} -H {size} --frames {frames} --steps 20 --sampler euler --shift {shift:g} --cfg 5 --seed 1 -o video.mp4
    build/ditkit judge video.mp4 --prompt "a red circle moving left on a blue background"

`SHA256SUMS` lists every file (`sha256sum -c SHA256SUMS`).
"""

STAGES = {"tokenizer": stage_tokenizer, "vae": stage_vae, "vae_more": stage_vae_more, "latents": stage_latents,
          "dit": stage_dit, "export": stage_export}


def main():
    torch.set_num_threads(1)
    names = sys.argv[1:] or ["all"]
    if names == ["all"]:
        names = list(STAGES)
    for n in names:
        log("stage", n)
        STAGES[n]()


if __name__ == "__main__":
    main()
