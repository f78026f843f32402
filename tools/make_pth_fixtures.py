#!/usr/bin/env python3
"""Writes the small torch.save-format fixtures under tests/data/pth/ without torch installed.

The zip layout (stored entries, data aligned to 64 bytes by an 'FB' padding extra field,
optional ZIP64 records) and the pickle (torch._utils._rebuild_tensor_v2 calls whose storages
are persistent ids) follow torch/serialization.py. Stub modules named torch and torch._utils
make Python's pickle emit the same GLOBAL opcodes torch does. Values follow simple formulas
that tests/test_pth.cpp recomputes.

Usage: python3 tools/make_pth_fixtures.py [output dir]
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib

# --- stub torch: only names, never called -------------------------------------------------

torch = types.ModuleType("torch")
torch._utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch._utils


def _stub_function(module, name):
    def stub(*args):
        raise RuntimeError("stub " + name)

    stub.__module__, stub.__name__, stub.__qualname__ = module.__name__, name, name
    setattr(module, name, stub)
    return stub


rebuild_tensor_v2 = _stub_function(torch._utils, "_rebuild_tensor_v2")
rebuild_parameter = _stub_function(torch._utils, "_rebuild_parameter")

# torch storage class name -> struct format of one element
STORAGE_FORMATS = {"FloatStorage": "f", "HalfStorage": "e", "BFloat16Storage": "H", "LongStorage": "q"}
for _name in STORAGE_FORMATS:
    setattr(torch, _name, type(_name, (), {"__module__": "torch"}))


def bf16_bits(value):
    """bf16 bits of a value exactly representable in bf16 (the top half of its f32 bits)."""
    (bits,) = struct.unpack("<I", struct.pack("<f", value))
    assert bits & 0xFFFF == 0, value
    return bits >> 16


class Storage:
    def __init__(self, key, type_name, values):
        self.key, self.type_name, self.values = key, type_name, values

    def data(self):
        fmt = STORAGE_FORMATS[self.type_name]
        values = [bf16_bits(v) for v in self.values] if self.type_name == "BFloat16Storage" else self.values
        return struct.pack("<%d%s" % (len(values), fmt), *values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, protocol):
        return rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False,
                                   collections.OrderedDict())


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce_ex__(self, protocol):
        return rebuild_parameter, (self.tensor, True, collections.OrderedDict())


def contiguous(storage, size):
    stride, acc = [], 1
    for s in reversed(size):
        stride.insert(0, acc)
        acc *= s
    return Tensor(storage, 0, size, stride)


class Pickler(pickle.Pickler):
    """torch.save's pickler: storages become ('storage', type, key, location, numel)."""

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.type_name), obj.key, "cpu", len(obj.values))
        return None


def storages_of(obj, found):
    if isinstance(obj, Storage):
        found[obj.key] = obj
    elif isinstance(obj, Tensor):
        storages_of(obj.storage, found)
    elif isinstance(obj, Parameter):
        storages_of(obj.tensor, found)
    elif isinstance(obj, dict):
        for value in obj.values():
            storages_of(value, found)
    return found


# --- zip writer ---------------------------------------------------------------------------


def write_zip(path, entries, zip64=False, deflate=(), data_shift=0):
    """Stored entries whose data starts at offset ≡ data_shift (mod 64), as torch's writer pads them.

    entries: (name, bytes) pairs; names in `deflate` are compressed instead (for error tests).
    """
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        raw_name = name.encode()
        method = 8 if name in deflate else 0
        payload = data
        if method:
            deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = deflater.compress(data) + deflater.flush()
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = b""
        if zip64:
            local_extra += struct.pack("<HHQQ", 1, 16, len(data), len(payload))
        header_end = offset + 30 + len(raw_name) + len(local_extra) + 4
        pad = (data_shift - header_end) % 64
        local_extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # 'FB' padding record
        size32 = 0xFFFFFFFF if zip64 else len(data)
        csize32 = 0xFFFFFFFF if zip64 else len(payload)
        version = 45 if zip64 else 20
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, method, 0, 0x21, crc, csize32, size32,
                           len(raw_name), len(local_extra))
        out += raw_name + local_extra + payload
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(payload), offset) if zip64 else b""
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, method, 0, 0x21, crc,
                               csize32, size32, len(raw_name), len(central_extra), 0, 0, 0, 0,
                               0xFFFFFFFF if zip64 else offset)
        central += raw_name + central_extra
    central_offset = len(out)
    out += central
    count = len(entries)
    if zip64:
        end64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central),
                           central_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), central_offset, 0)
    with open(path, "wb") as f:
        f.write(out)
    if not deflate:
        with zipfile.ZipFile(path) as z:  # Python's own reader must agree with the layout
            assert z.testzip() is None and [i.filename for i in z.infolist()] == [n for n, _ in entries]


def save(path, obj, protocol=2, byteorder=b"little", **zip_options):
    """torch.save's zip layout around a pickled state dict."""
    archive = os.path.splitext(os.path.basename(path))[0]
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(obj)
    entries = [(archive + "/data.pkl", buf.getvalue()), (archive + "/byteorder", byteorder)]
    for key, storage in sorted(storages_of(obj, {}).items()):
        entries.append((archive + "/data/" + key, storage.data()))
    entries.append((archive + "/version", b"3\n"))
    write_zip(path, entries, **zip_options)


def save_pickle_bytes(path, data):
    archive = os.path.splitext(os.path.basename(path))[0]
    write_zip(path, [(archive + "/data.pkl", data), (archive + "/version", b"3\n")])


# --- fixtures -----------------------------------------------------------------------------


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                                    "data", "pth")
    os.makedirs(out_dir, exist_ok=True)
    path = lambda name: os.path.join(out_dir, name)

    # Every dtype, a transposed view, two views of one storage, a parameter and a 0-d tensor.
    matrix = Storage("4", "FloatStorage", [r * 4 + c + 0.5 for r in range(3) for c in range(4)])
    shared = Storage("5", "FloatStorage", [k * 1.5 for k in range(10)])
    tensors = collections.OrderedDict()
    tensors["f32"] = contiguous(Storage("0", "FloatStorage", [(i - 3) * 0.25 for i in range(6)]), (2, 3))
    tensors["bf16"] = contiguous(Storage("1", "BFloat16Storage", [(i - 4) * 0.5 for i in range(8)]), (2, 4))
    tensors["f16"] = contiguous(Storage("2", "HalfStorage", [i * 0.125 - 1 for i in range(6)]), (3, 2))
    tensors["i64"] = contiguous(Storage("3", "LongStorage", [i * 1000003 - 5 for i in range(4)] + [2**40 + 7]),
                                (5,))
    tensors["transposed"] = Tensor(matrix, 0, (4, 3), (1, 4))
    tensors["shared_a"] = Tensor(shared, 0, (4,), (1,))
    tensors["shared_b"] = Tensor(shared, 4, (2, 3), (3, 1))
    tensors["param"] = Parameter(contiguous(Storage("6", "FloatStorage", [1.0, 2.0, 3.0]), (3,)))
    tensors["scalar"] = contiguous(Storage("7", "FloatStorage", [42.0]), ())
    save(path("tensors.pth"), tensors)

    # A training checkpoint: tensors one level down, pickle protocol 4, ZIP64 records.
    save(path("nested.pth"), {
        "state_dict": collections.OrderedDict([
            ("layer.weight", contiguous(Storage("0", "BFloat16Storage", [1.0, -2.0, 0.5, 4.0]), (2, 2))),
            ("layer.bias", contiguous(Storage("1", "FloatStorage", [0.25, -0.75]), (2,))),
        ]),
        "epoch": 3,
        "config": {"lr": 0.1, "name": "tiny"},
    }, protocol=4, zip64=True)

    # Storage data at an odd offset: the reader must copy instead of viewing.
    save(path("unaligned.pth"), {"w": contiguous(Storage("0", "FloatStorage", [0.5, 1.5, 2.5, 3.5]), (2, 2))},
         data_shift=1)

    # Errors: a deflated storage, a storage shorter than its tensor, a big-endian archive.
    save(path("compressed.pth"), {"w": contiguous(Storage("0", "FloatStorage", [0.0] * 64), (8, 8))},
         deflate=("compressed/data/0",))
    save(path("short_storage.pth"), {"w": contiguous(Storage("0", "FloatStorage", [1.0] * 10), (4, 4))})
    save(path("big_endian.pth"), {"w": contiguous(Storage("0", "FloatStorage", [1.0, 2.0]), (2,))},
         byteorder=b"big")

    # {'w': os.system('touch ...')}: written opcode by opcode, as pickle itself would refuse to.
    command = b"touch /tmp/ditkit_pth_fixture_was_executed"
    save_pickle_bytes(path("malicious.pth"),
                      b"\x80\x02}X\x01\x00\x00\x00wcos\nsystem\nX" + struct.pack("<I", len(command)) + command +
                      b"\x85Rs.")


if __name__ == "__main__":
    main()
