"""What the model consumes: a `Batch` of audio (or cached encoder features) and texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass
class Batch:
    """What the model consumes: audio (or cached encoder features) and, for training, the text."""

    ids: list[str]
    waveforms: Optional[torch.Tensor] = None  # [B, T] at 16 kHz
    waveform_lengths: Optional[torch.Tensor] = None
    features: Optional[torch.Tensor] = None  # [B, F, D] frozen-encoder output, when cached
    feature_lengths: Optional[torch.Tensor] = None
    texts: Optional[list[str]] = None
    images: Optional[torch.Tensor] = None  # [B, T, 3, S, S] pixels of each item's image (T = 1) or clip
    image_frames: Optional[torch.Tensor] = None  # [B, T] bool: real frames; an all-False row has no image

    def to(self, device: torch.device) -> "Batch":
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in vars(self).items()}
        return Batch(**moved)


def pad_stack(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad arrays along their first dimension into one tensor; also return their lengths."""
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    batch = torch.zeros((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), dtype=torch.float32)
    for i, a in enumerate(arrays):
        batch[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return batch, lengths


def stack_images(pixels: list[Optional[torch.Tensor]]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Per-item [3, S, S] pixels (None: no picture) -> (images [B, 1, 3, S, S], image_frames [B, 1]);
    (None, None) when no item has one."""
    present = [p for p in pixels if p is not None]
    if not present:
        return None, None
    blank = torch.zeros_like(present[0])
    images = torch.stack([p if p is not None else blank for p in pixels])[:, None]
    return images, torch.tensor([p is not None for p in pixels])[:, None]
