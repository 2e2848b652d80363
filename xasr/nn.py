"""Transformer pieces the encoders and adapters share: positions (sinusoidal, rotary), attention (self or
cross), pre-norm blocks; and the dtype the frozen models run in."""

from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), on Linux."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def resolve_dtype(name: str, device: Optional[torch.device] = None) -> torch.dtype:
    """The torch dtype a `dtype` setting (LLM or encoder) means on `device` (default: CUDA if present, else CPU)."""
    if name not in ("float32", "bfloat16", "auto"):
        raise ValueError(f"unknown dtype '{name}': use float32, bfloat16 or auto")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "auto":
        if name == "bfloat16" and device.type == "cpu" and not cpu_has_native_bf16():
            warn_emulated_bf16()
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


@functools.cache
def warn_emulated_bf16() -> None:
    log.warning("bfloat16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated and many times "
                "slower than float32; use dtype auto or float32")


def sinusoids(length: int, dim: int, device=None) -> Tensor:
    """[length, dim] sinusoidal position encodings (Whisper's layout: sines then cosines)."""
    increment = math.log(10000) / (dim // 2 - 1)
    inverse = torch.exp(-increment * torch.arange(dim // 2, device=device, dtype=torch.float32))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inverse
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def apply_rotary(x: Tensor) -> Tensor:
    """Rotary position embedding on [B, H, T, head_dim] (half-split layout)."""
    half = x.shape[-1] // 2
    frequencies = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(x.shape[2], device=x.device, dtype=torch.float32)[:, None] * frequencies
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    """Multi-head attention. Self-attention (one fused qkv projection) or, with `context_dim`,
    cross-attention: queries from `x`, keys and values from `context` ([B, S, context_dim]).
    `rotary`: rotary positions on the queries and keys (self-attention)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, context_dim: Optional[int] = None,
                 rotary: bool = False):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.rotary = rotary
        self.cross = context_dim is not None
        if self.cross:
            self.q = nn.Linear(d_model, d_model)
            self.kv = nn.Linear(context_dim, 2 * d_model)
        else:
            self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, key_mask: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """`key_mask` [B, S] is True where a key may be attended to (S: the context's length, or x's)."""
        batch, length, d_model = x.shape
        if self.cross:
            q = self.q(x).view(batch, length, self.n_heads, -1).transpose(1, 2)
            k, v = self.kv(context).view(batch, context.shape[1], 2, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if self.rotary:
            q, k = apply_rotary(q), apply_rotary(k)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :],
                                                  dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(batch, length, d_model))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer: self-attention, cross-attention to a context (with `context_dim`), MLP."""

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, dropout: float, context_dim: Optional[int] = None):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = Attention(d_model, n_heads, dropout)
        if context_dim is not None:
            self.cross_attention_norm = nn.LayerNorm(d_model)
            self.cross_attention = Attention(d_model, n_heads, dropout, context_dim=context_dim)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                 nn.Linear(ff_mult * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor, context: Optional[Tensor] = None,
                context_mask: Optional[Tensor] = None) -> Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), key_mask))
        if context is not None:
            x = x + self.dropout(self.cross_attention(self.cross_attention_norm(x), context_mask, context))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))
