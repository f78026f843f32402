"""Checks tools/tiny_wan/modules.py against the official-code golden (../shared/golden/wan_tiny):
the same weights must give the same outputs to float32 noise (README §8: max abs <= 1e-4).

Usage: /usr/bin/python3 tools/tiny_wan/check_golden.py [GOLDEN_DIR]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modules  # noqa: E402
import st  # noqa: E402

TOL = 1e-4


def build(cls, folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    m = cls(**cfg)
    m.load_state_dict(st.load(os.path.join(folder, "weights.safetensors")), strict=True)
    return m.eval()


def report(name, got, want):
    err = (got.float() - want.float()).abs().max().item()
    print(f"{name:28s} max abs err {err:.2e}")
    return err <= TOL


def main():
    g = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/golden/wan_tiny")
    ok = True
    with torch.no_grad():
        t5 = build(modules.T5Encoder, os.path.join(g, "t5"))
        io = st.load(os.path.join(g, "t5/io.safetensors"))
        ok &= report("t5 out", t5(io["ids"], io["mask"]), io["out"])

        dit = build(modules.WanModel, os.path.join(g, "dit"))
        io = st.load(os.path.join(g, "dit/io.safetensors"))
        for i in range(3):
            out = dit(io["x"][None], io[f"t_{i}"].double(), io[f"context_{i}"][None])[0]
            ok &= report(f"dit out_{i}", out, io[f"out_{i}"])

        cfg = json.load(open(os.path.join(g, "vae/config.json")))
        vae = modules.WanVAE(**cfg)
        vae.load_state_dict(st.load(os.path.join(g, "vae/weights.safetensors")), strict=True)
        io = st.load(os.path.join(g, "vae/io.safetensors"))
        ok &= report("vae dec_out", vae.decode(io["dec_z"][None])[0], io["dec_out"])
        ok &= report("vae dec1_out", vae.decode(io["dec1_z"][None])[0], io["dec1_out"])
        ok &= report("vae enc_mu", vae.encode(io["enc_video"][None])[0], io["enc_mu"])

        io = st.load(os.path.join(g, "e2e/io_unipc.safetensors"))
        for s in range(4):
            t = io[f"step{s}_t"].double()
            x = io[f"step{s}_latent_in"][None]
            ok &= report(f"e2e step{s} pred_cond", dit(x, t, io["context_cond"][None])[0], io[f"step{s}_pred_cond"])
        ok &= report("e2e video", vae.decode(io["latent_final"][None])[0], io["video"])
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
