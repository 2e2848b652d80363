"""The interface every speech encoder follows: 16 kHz waveforms in, frames and their lengths out."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def lengths_to_mask(lengths: Tensor, max_length: int | None = None) -> Tensor:
    """Boolean [B, max_length] mask, True on the first `lengths[b]` positions of each row."""
    max_length = int(lengths.max()) if max_length is None else max_length
    return torch.arange(max_length, device=lengths.device) < lengths[:, None]


class SpeechEncoder(nn.Module):
    """Base class: subclasses set `output_dim` and `frame_rate` and implement `encode`.

    A frozen encoder has no trainable parameters, stays in eval mode whatever `train()` is
    asked, and runs without autograd.
    """

    output_dim: int  # size of each output frame
    frame_rate: float  # output frames per second of audio (Whisper: 50)
    sample_rate: int = 16000
    source_checksum: str | None = None  # of the float32 weights, set when `run_in` casts them

    def __init__(self, frozen: bool = True):
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> "SpeechEncoder":
        """Apply `frozen` to the parameters and the train/eval mode (call at the end of __init__)."""
        if self.frozen:
            self.requires_grad_(False)
            self.eval()
        return self

    def train(self, mode: bool = True) -> "SpeechEncoder":
        return super().train(mode and not self.frozen)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """waveforms [B, T] float at 16 kHz, lengths [B] in samples -> features [B, F, D], lengths [B]."""
        if waveforms.dim() != 2:
            raise ValueError(f"expected waveforms [batch, samples], got shape {tuple(waveforms.shape)}")
        lengths = lengths.to(device=waveforms.device, dtype=torch.long)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            features, feature_lengths = self.encode(waveforms, lengths)
        return features.float(), feature_lengths

    def run_in(self, dtype: torch.dtype) -> "SpeechEncoder":
        """Hold the frozen weights in `dtype` (bfloat16: ~2x faster where the CPU has bf16 matrix units).
        Buffers such as Whisper's mel filters stay float32, and so do the frames `forward` returns."""
        if dtype != torch.float32 and not self.frozen:
            raise ValueError("only a frozen encoder runs in a dtype other than float32")
        from xasr.hub import weights_checksum  # a model directory records the weights as the source gave them

        self.source_checksum = self.source_checksum or weights_checksum(self)
        for parameter in self.parameters():
            parameter.data = parameter.data.to(dtype)
        return self

    def encode(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def encoded_seconds(self, seconds: float) -> float:
        """Seconds of input the encoder processes for `seconds` of audio (Whisper pads), for batch sizing."""
        return seconds
