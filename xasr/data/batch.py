"""What the model consumes: a `Batch` of audio (or cached encoder features) and texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass(frozen=True)
class Visual:
    """What an utterance is shown: a picture or a clip (`kind` "image" or "video") by path."""

    kind: str
    path: str

    @property
    def placeholder(self) -> str:
        return f"<{self.kind}>"


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
    image_features: Optional[torch.Tensor] = None  # [B, T, N, D] frozen vision features instead, when cached
    image_frames: Optional[torch.Tensor] = None  # [B, T] bool: real frames; an all-False row has no image
    visuals: Optional[list[Optional["Visual"]]] = None  # what each item shows (None: nothing, or unreadable)

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


def stack_images(items: list[Optional[torch.Tensor]]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Per-item clips [T, ...] (a picture is a clip of one frame; pixels [T, 3, S, S] or features
    [T, N, D]; None: nothing shown) -> (images [B, T_max, ...] zero-padded, image_frames [B, T_max]
    True for real frames); (None, None) when no item has one."""
    present = [p for p in items if p is not None]
    if not present:
        return None, None
    frames = [len(c) if c is not None else 0 for c in items]
    images = torch.zeros(len(items), max(frames), *present[0].shape[1:], dtype=present[0].dtype)
    for b, clip in enumerate(items):
        if clip is not None:
            images[b, : len(clip)] = clip
    mask = torch.arange(images.shape[1])[None] < torch.tensor(frames)[:, None]
    return images, mask
