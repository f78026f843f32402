"""Wan2.1 text-to-video modules in plain PyTorch with the official state-dict key names:
umT5 encoder (wan/modules/t5.py T5Encoder), WanModel DiT (wan/modules/model.py) and the Wan VAE
(wan/modules/vae.py WanVAE_ plus the WanVAE latent normalisation). Written from the structure
documented in ../shared/golden/wan_tiny/README.md; check_golden.py proves they match.

The VAE runs the whole frame stream at once; this is the full-sequence equivalent of the
official chunked, cached encode/decode (causal convs see 2 zero frames in front, the first frame
skips the temporal resampling), which also makes it trainable with ordinary autograd.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


# ---------------------------------------------------------------- umT5 encoder

class T5LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps))


class T5Attention(nn.Module):
    def __init__(self, dim, dim_attn, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim_attn // num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x, mask, pos_bias):
        b, n, c = x.size(0), self.num_heads, self.head_dim
        q, k, v = (f(x).view(b, -1, n, c) for f in (self.q, self.k, self.v))
        bias = pos_bias.expand(b, -1, -1, -1).clone()
        bias.masked_fill_(mask.view(b, 1, 1, -1) == 0, torch.finfo(x.dtype).min)
        # umT5: no 1/sqrt(d) scaling.
        attn = torch.softmax((torch.einsum("binc,bjnc->bnij", q, k) + bias).float(), dim=-1)
        return self.o(torch.einsum("bnij,bjnc->binc", attn, v).reshape(b, -1, n * c))


class T5FeedForward(nn.Module):
    def __init__(self, dim, dim_ffn):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False))  # official: Sequential(Linear, GELU)
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x) * gelu_tanh(self.gate(x)))


def relative_position_bucket(rel, num_buckets, max_dist=128):
    num_buckets //= 2  # bidirectional
    buckets = (rel > 0).long() * num_buckets
    rel = rel.abs()
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_dist / max_exact) *
                         (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(rel < max_exact, rel, large)


class T5RelativeEmbedding(nn.Module):
    def __init__(self, num_buckets, num_heads):
        super().__init__()
        self.num_buckets = num_buckets
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, lq, lk):
        rel = torch.arange(lk).unsqueeze(0) - torch.arange(lq).unsqueeze(1)
        return self.embedding(relative_position_bucket(rel, self.num_buckets)).permute(2, 0, 1).unsqueeze(0)


class T5Block(nn.Module):
    def __init__(self, dim, dim_attn, dim_ffn, num_heads, num_buckets):
        super().__init__()
        self.norm1 = T5LayerNorm(dim)
        self.attn = T5Attention(dim, dim_attn, num_heads)
        self.norm2 = T5LayerNorm(dim)
        self.ffn = T5FeedForward(dim, dim_ffn)
        self.pos_embedding = T5RelativeEmbedding(num_buckets, num_heads)

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask, self.pos_embedding(x.size(1), x.size(1)))
        return x + self.ffn(self.norm2(x))


class T5Encoder(nn.Module):
    """Wan's T5Encoder with shared_pos=False (umT5: one relative bias table per layer)."""

    def __init__(self, vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets, **_):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(T5Block(dim, dim_attn, dim_ffn, num_heads, num_buckets) for _ in range(num_layers))
        self.norm = T5LayerNorm(dim)

    def forward(self, ids, mask):
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


# ---------------------------------------------------------------- WanModel DiT

def sinusoidal_embedding_1d(dim, position):
    half = dim // 2
    position = position.double()
    sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).double().div(half)))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


def rope_params(max_len, dim, theta=10000):
    freqs = torch.outer(torch.arange(max_len).double(),
                        1.0 / torch.pow(theta, torch.arange(0, dim, 2).double().div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


def rope_apply(x, grid, freqs):
    """x [B, L, heads, hd]; grid (f, h, w); freqs complex [1024, hd/2] (t | h | w columns)."""
    f, h, w = grid
    c = x.size(3) // 2
    ft, fh, fw = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    table = torch.cat([ft[:f].view(f, 1, 1, -1).expand(f, h, w, -1),
                       fh[:h].view(1, h, 1, -1).expand(f, h, w, -1),
                       fw[:w].view(1, 1, w, -1).expand(f, h, w, -1)], dim=-1).reshape(f * h * w, 1, c)
    xc = torch.view_as_complex(x.double().reshape(x.size(0), x.size(1), x.size(2), c, 2))
    return torch.view_as_real(xc * table).flatten(3).float()


class WanRMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def attention(q, k, v):
    """q [B, Lq, n, d], k/v [B, Lk, n, d] -> [B, Lq, n*d]."""
    s = torch.einsum("bind,bjnd->bnij", q, k) / math.sqrt(q.size(-1))
    o = torch.einsum("bnij,bjnd->bind", torch.softmax(s, dim=-1), v)
    return o.flatten(2)


class WanSelfAttention(nn.Module):
    def __init__(self, dim, num_heads, eps):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = WanRMSNorm(dim, eps)
        self.norm_k = WanRMSNorm(dim, eps)

    def heads(self, x):
        return x.view(x.size(0), x.size(1), self.num_heads, -1)

    def forward(self, x, grid, freqs):
        q = rope_apply(self.heads(self.norm_q(self.q(x))), grid, freqs)
        k = rope_apply(self.heads(self.norm_k(self.k(x))), grid, freqs)
        return self.o(attention(q, k, self.heads(self.v(x))))


class WanCrossAttention(WanSelfAttention):
    def forward(self, x, context):
        q = self.heads(self.norm_q(self.q(x)))
        k = self.heads(self.norm_k(self.k(context)))
        return self.o(attention(q, k, self.heads(self.v(context))))


class WanAttentionBlock(nn.Module):
    def __init__(self, dim, ffn_dim, num_heads, eps):
        super().__init__()
        self.eps = eps
        self.self_attn = WanSelfAttention(dim, num_heads, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross_attn = WanCrossAttention(dim, num_heads, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)

    def forward(self, x, e0, grid, freqs, context):
        e = (self.modulation + e0).chunk(6, dim=1)
        norm = lambda t: F.layer_norm(t, t.shape[-1:], eps=self.eps)  # noqa: E731
        x = x + self.self_attn(norm(x) * (1 + e[1]) + e[0], grid, freqs) * e[2]
        x = x + self.cross_attn(self.norm3(x), context)
        return x + self.ffn(norm(x) * (1 + e[4]) + e[3]) * e[5]


class Head(nn.Module):
    def __init__(self, dim, out_dim, patch_size, eps):
        super().__init__()
        self.eps = eps
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)

    def forward(self, x, e):
        shift, scale = (self.modulation + e.unsqueeze(1)).chunk(2, dim=1)
        return self.head(F.layer_norm(x, x.shape[-1:], eps=self.eps) * (1 + scale) + shift)


class WanModel(nn.Module):
    def __init__(self, patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=2048, ffn_dim=8192, freq_dim=256,
                 text_dim=4096, out_dim=16, num_heads=16, num_layers=32, eps=1e-6, **_):
        super().__init__()
        self.patch_size, self.text_len, self.dim, self.freq_dim, self.out_dim = patch_size, text_len, dim, freq_dim, out_dim
        self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=patch_size, stride=patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(WanAttentionBlock(dim, ffn_dim, num_heads, eps) for _ in range(num_layers))
        self.head = Head(dim, out_dim, patch_size, eps)
        d = dim // num_heads
        self.freqs = torch.cat([rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)),
                                rope_params(1024, 2 * (d // 6))], dim=1)

    def forward(self, x, t, context):
        """x [B, C, F, H, W]; t [B]; context [B, Lc<=text_len, text_dim] (zero-padded to text_len here)."""
        x = self.patch_embedding(x)
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        e = self.time_embedding(sinusoidal_embedding_1d(self.freq_dim, t).float())
        e0 = self.time_projection(e).unflatten(1, (6, self.dim))
        context = F.pad(context, (0, 0, 0, self.text_len - context.size(1)))
        context = self.text_embedding(context)
        for block in self.blocks:
            x = block(x, e0, grid, self.freqs, context)
        return self.unpatchify(self.head(x, e), grid)

    def unpatchify(self, x, grid):
        (f, h, w), (pt, ph, pw), c = grid, self.patch_size, self.out_dim
        x = x.view(x.size(0), f, h, w, pt, ph, pw, c)
        return torch.einsum("bfhwpqrc->bcfphqwr", x).reshape(x.size(0), c, f * pt, h * ph, w * pw)


# ---------------------------------------------------------------- Wan VAE

class CausalConv3d(nn.Conv3d):
    """Pads W, H symmetrically and time with 2*p zero frames in front only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.padding
        self._pad = (p[2], p[2], p[1], p[1], 2 * p[0], 0)
        self.padding = (0, 0, 0)

    def forward(self, x):
        return super().forward(F.pad(x, self._pad))


class RMS_norm(nn.Module):
    def __init__(self, dim, images=True):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x):
        return F.normalize(x, dim=1) * self.scale * self.gamma


def per_frame(fn, x):
    b, t = x.size(0), x.size(2)
    y = fn(x.transpose(1, 2).flatten(0, 1))
    return y.view(b, t, *y.shape[1:]).transpose(1, 2)


class Resample(nn.Module):
    def __init__(self, dim, mode):
        super().__init__()
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest"),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x):
        b, c = x.size(0), x.size(1)
        if self.mode == "upsample3d" and x.size(2) > 1:
            # Frame 0 stays one frame; the others become two (channel halves -> frames 2i, 2i+1).
            y = self.time_conv(x[:, :, 1:]).view(b, 2, c, -1, x.size(3), x.size(4))
            y = torch.stack((y[:, 0], y[:, 1]), 3).flatten(2, 3)
            x = torch.cat([x[:, :, :1], y], dim=2)
        x = per_frame(self.resample, x)
        if self.mode == "downsample3d" and x.size(2) > 1:
            x = torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.residual = nn.Sequential(RMS_norm(in_dim, images=False), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
                                      RMS_norm(out_dim, images=False), nn.SiLU(), nn.Dropout(0.0),
                                      CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x):
        return self.shortcut(x) + self.residual(x)


class AttentionBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = RMS_norm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def frame(self, x):
        n, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).view(n, 3 * c, h * w).transpose(1, 2).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
        return self.proj(a.transpose(1, 2).reshape(n, c, h, w))

    def forward(self, x):
        return x + per_frame(self.frame, x)


class Encoder3d(nn.Module):
    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, temperal_downsample):
        super().__init__()
        dims = [dim * u for u in [1] + dim_mult]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, "downsample3d" if temperal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*layers)
        self.middle = nn.Sequential(ResidualBlock(out_dim, out_dim), AttentionBlock(out_dim), ResidualBlock(out_dim, out_dim))
        self.head = nn.Sequential(RMS_norm(out_dim, images=False), nn.SiLU(), CausalConv3d(out_dim, z_dim, 3, padding=1))

    def forward(self, x):
        return self.head(self.middle(self.downsamples(self.conv1(x))))


class Decoder3d(nn.Module):
    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, temperal_upsample):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1]] + dim_mult[::-1]]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0]))
        layers = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous upsample halved the channels
            for _ in range(num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, "upsample3d" if temperal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*layers)
        self.head = nn.Sequential(RMS_norm(out_dim, images=False), nn.SiLU(), CausalConv3d(out_dim, 3, 3, padding=1))

    def forward(self, x):
        return self.head(self.upsamples(self.middle(self.conv1(x))))


class WanVAE(nn.Module):
    """WanVAE_ weights (encoder, conv1, conv2, decoder) with WanVAE's latent normalisation."""

    def __init__(self, dim, z_dim, dim_mult, num_res_blocks, temperal_downsample, latent_mean, latent_std, **_):
        super().__init__()
        self.encoder = Encoder3d(dim, z_dim * 2, dim_mult, num_res_blocks, temperal_downsample)
        self.conv1 = CausalConv3d(z_dim * 2, z_dim * 2, 1)
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder3d(dim, z_dim, dim_mult, num_res_blocks, temperal_downsample[::-1])
        self.register_buffer("mean", torch.tensor(latent_mean, dtype=torch.float32).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("inv_std", (1.0 / torch.tensor(latent_std, dtype=torch.float32)).view(1, -1, 1, 1, 1),
                             persistent=False)

    def encode_raw(self, video):
        """video [B, 3, 1+4k, H, W] in [-1, 1] -> (mu, log_var), before normalisation."""
        return self.conv1(self.encoder(video)).chunk(2, dim=1)

    def encode(self, video):
        return (self.encode_raw(video)[0] - self.mean) * self.inv_std

    def decode_raw(self, z):
        """Normalised latent -> decoder output before the clamp."""
        return self.decoder(self.conv2(z / self.inv_std + self.mean))

    def decode(self, z):
        return self.decode_raw(z).clamp(-1, 1)
