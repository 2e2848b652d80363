"""SpecAugment-style masking of frame sequences (Park et al., 2019), for training on cached encoder outputs.

Masks are applied to the frozen encoder's outputs, so they work on features cached once: every
epoch sees the same utterance with different frames and channels hidden, without a new encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MaskingConfig:
    time_masks: int = 0  # spans of frames set to zero per utterance (0 = off)
    max_time_fraction: float = 0.05  # each span covers at most this fraction of the utterance's frames
    max_time_width: int = 20  # ... and at most this many frames
    feature_masks: int = 0  # bands of channels set to zero per utterance (0 = off)
    max_feature_width: int = 32  # channels per band, at most

    @property
    def enabled(self) -> bool:
        return self.time_masks > 0 or self.feature_masks > 0


def mask_frames(features: Tensor, lengths: Tensor, config: MaskingConfig,
                generator: torch.Generator | None = None) -> Tensor:
    """A copy of `features` [B, T, D] with random time spans and channel bands zeroed in each utterance."""
    if not config.enabled:
        return features
    batch, frames, dim = features.shape
    keep = torch.ones(batch, frames, dim, dtype=torch.bool, device=features.device)
    positions = torch.arange(frames, device=features.device)
    channels = torch.arange(dim, device=features.device)

    def uniform(high: Tensor) -> Tensor:  # integers in [0, high] per utterance
        draw = torch.rand(batch, generator=generator).to(features.device)
        return (draw * (high + 1).float()).long().clamp_max(high)

    lengths = lengths.to(features.device)
    max_width = torch.minimum((lengths.float() * config.max_time_fraction).long(),
                              torch.full_like(lengths, config.max_time_width))
    for _ in range(config.time_masks):
        width = uniform(max_width)
        start = uniform((lengths - width).clamp_min(0))
        span = (positions[None] >= start[:, None]) & (positions[None] < (start + width)[:, None])
        keep &= ~span[..., None]
    for _ in range(config.feature_masks):
        width = uniform(torch.full_like(lengths, min(config.max_feature_width, dim)))
        start = uniform(dim - width)
        band = (channels[None] >= start[:, None]) & (channels[None] < (start + width)[:, None])
        keep &= ~band[:, None, :]
    return features * keep
