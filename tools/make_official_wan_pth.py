#!/usr/bin/env python3
"""Re-saves the golden umT5 and VAE weights the way the official Wan2.1 folder ships them:
models_t5_umt5-xxl-enc-bf16.pth (bf16) and Wan2.1_VAE.pth (f32), torch.save zip archives,
written without torch by tools/make_pth_fixtures.py's writer.

Usage: python3 tools/make_official_wan_pth.py GOLDEN_WAN_TINY_DIR OUT_DIR
"""
import collections
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import make_pth_fixtures as pth  # noqa: E402


class RawStorage(pth.Storage):
    """A storage holding bytes as they are."""

    def __init__(self, key, type_name, raw):
        super().__init__(key, type_name, [])
        self.raw = raw
        self.values = range(len(raw) // struct.calcsize(pth.STORAGE_FORMATS[type_name]))

    def data(self):
        return self.raw


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    for name, info in sorted(header.items()):
        begin, end = info["data_offsets"]
        yield name, info["dtype"], info["shape"], blob[8 + n + begin:8 + n + end]


def to_bf16(raw):
    """Round f32 bytes to bf16 (nearest even), as torch's .to(torch.bfloat16)."""
    out = bytearray()
    for (bits,) in struct.iter_unpack("<I", raw):
        bits += 0x7FFF + ((bits >> 16) & 1)
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out)


def convert(src, dst, bf16):
    state = collections.OrderedDict()
    for key, (name, dtype, shape, raw) in enumerate(read_safetensors(src)):
        assert dtype == "F32", (name, dtype)
        storage = RawStorage(str(key), "BFloat16Storage" if bf16 else "FloatStorage", to_bf16(raw) if bf16 else raw)
        state[name] = pth.contiguous(storage, shape)
    pth.save(dst, state)


def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    convert(os.path.join(golden, "t5", "weights.safetensors"), os.path.join(out, "models_t5_umt5-xxl-enc-bf16.pth"), True)
    convert(os.path.join(golden, "vae", "weights.safetensors"), os.path.join(out, "Wan2.1_VAE.pth"), False)


if __name__ == "__main__":
    main()
