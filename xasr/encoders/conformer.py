"""A small Conformer (Gulati et al., 2020) to train from scratch: log-mel 80 -> conv2d x4 -> blocks.

Positions are rotary (relative, any length); every step masks padding, so an utterance gives the
same frames batched or alone. Frames: n samples -> n // 160 + 1 mel frames -> a quarter (25 per second).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xasr.config import ConformerConfig
from xasr.encoders.base import SpeechEncoder, lengths_to_mask
from xasr.nn import Attention

WINDOW_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms


def log_mel_features(waveforms: Tensor, lengths: Tensor, filters: Tensor) -> tuple[Tensor, Tensor]:
    """[B, T] samples -> log-mel [B, F, n_mels] with per-utterance mean/variance normalisation.

    Frame i covers samples [160 i - 200, 160 i + 200), zero outside the audio (no reflection, so
    padding a batch changes nothing).
    """
    mask = lengths_to_mask(lengths, waveforms.shape[1])
    padded = F.pad(waveforms.float() * mask, (WINDOW_LENGTH // 2, WINDOW_LENGTH // 2))
    window = torch.hann_window(WINDOW_LENGTH, device=waveforms.device)
    stft = torch.stft(padded, WINDOW_LENGTH, HOP_LENGTH, window=window, center=False, return_complex=True)
    mel = torch.log(filters.to(stft.device) @ stft.abs().pow(2) + 1e-6).transpose(1, 2)  # [B, F, n_mels]
    frame_lengths = torch.div(lengths, HOP_LENGTH, rounding_mode="floor") + 1
    frame_mask = lengths_to_mask(frame_lengths, mel.shape[1])[..., None]
    count = frame_lengths[:, None, None]
    mean = (mel * frame_mask).sum(1, keepdim=True) / count
    variance = ((mel - mean) ** 2 * frame_mask).sum(1, keepdim=True) / count
    return (mel - mean) / torch.sqrt(variance + 1e-5) * frame_mask, frame_lengths


def halve(lengths: Tensor) -> Tensor:
    """Frames after a stride-2 convolution with kernel 3 and padding 1: ceil(n / 2)."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


class Conv2dSubsampling(nn.Module):
    """Two stride-2 3x3 convolutions over (time, mel): 4x fewer frames."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, d_model, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(d_model, d_model, 3, stride=2, padding=1)
        self.out = nn.Linear(d_model * ((n_mels + 3) // 4), d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = x[:, None]  # [B, 1, T, n_mels]
        for conv in (self.conv1, self.conv2):
            x = F.relu(conv(x))
            lengths = halve(lengths)
            x = x * lengths_to_mask(lengths, x.shape[2])[:, None, :, None]
        batch, channels, frames, mels = x.shape
        return self.out(x.permute(0, 2, 1, 3).reshape(batch, frames, channels * mels)), lengths


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, mult: int, dropout: float):
        super().__init__(nn.LayerNorm(d_model), nn.Linear(d_model, mult * d_model), nn.SiLU(), nn.Dropout(dropout),
                         nn.Linear(mult * d_model, d_model), nn.Dropout(dropout))


class SelfAttention(Attention):
    """The conformer's attention: pre-norm, rotary positions, dropout on the output."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__(d_model, n_heads, dropout, rotary=True)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        return F.dropout(super().forward(self.norm(x), key_mask), self.dropout, self.training)


class ConvModule(nn.Module):
    def __init__(self, d_model: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.depthwise_norm = nn.LayerNorm(d_model)  # instead of BatchNorm: independent of the batch
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = F.glu(self.pointwise_in(self.norm(x)), dim=-1) * mask[..., None]
        x = self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        return self.dropout(self.pointwise_out(F.silu(self.depthwise_norm(x))))


class ConformerBlock(nn.Module):
    def __init__(self, config: ConformerConfig):
        super().__init__()
        d, p = config.d_model, config.dropout
        self.ff1 = FeedForward(d, config.ff_mult, p)
        self.attention = SelfAttention(d, config.n_heads, p)
        self.conv = ConvModule(d, config.conv_kernel_size, p)
        self.ff2 = FeedForward(d, config.ff_mult, p)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, mask: Tensor, key_mask: Tensor) -> Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attention(x, key_mask)
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ConformerEncoder(SpeechEncoder):
    def __init__(self, config: ConformerConfig, frozen: bool = False):
        super().__init__(frozen)
        import torchaudio

        self.config = config
        self.output_dim = config.d_model
        self.frame_rate = self.sample_rate / HOP_LENGTH / 4
        filters = torchaudio.functional.melscale_fbanks(
            WINDOW_LENGTH // 2 + 1, 20.0, self.sample_rate / 2, config.n_mels, self.sample_rate)
        self.register_buffer("mel_filters", filters.T.contiguous(), persistent=False)
        self.subsampling = Conv2dSubsampling(config.n_mels, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([ConformerBlock(config) for _ in range(config.n_layers)])
        self.freeze()

    def encode(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        features, frame_lengths = log_mel_features(waveforms, lengths, self.mel_filters)
        x, lengths = self.subsampling(features.to(next(self.subsampling.parameters()).dtype), frame_lengths)
        x = self.dropout(x)
        mask = lengths_to_mask(lengths, x.shape[1])
        key_mask = lengths_to_mask(lengths.clamp_min(1), x.shape[1])  # never a row with no key
        for block in self.blocks:
            x = block(x, mask, key_mask)
        return x * mask[..., None], lengths
