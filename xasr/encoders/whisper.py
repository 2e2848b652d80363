"""Whisper's encoder (Hugging Face weights) on log-mel features computed in torch, any audio length.

Audio is cut into 30 s windows, each encoded on its own, and the windows' frames concatenated, so
nothing is ever truncated. Per window, either

- `real_length=False`: the log-mel is padded to 3000 frames (30 s), exactly as Whisper was trained;
- `real_length=True`: the encoder runs on the real frames only (positional embeddings sliced, padding
  masked), which is faster on short audio and gives the same result for an utterance batched or alone;
  with `min_seconds`, a shorter window is encoded as that many seconds (the audio, then the padding
  Whisper knows) and only its real frames are kept (accuracy effects: egs/fsdd/asr/RESULTS.md).

Either way an utterance of n samples gives ceil((n // 160) / 2) frames at 50 per second.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from xasr.encoders.base import SpeechEncoder, lengths_to_mask

N_FFT = 400
HOP_LENGTH = 160  # 10 ms at 16 kHz


def mel_filters(n_mels: int, sample_rate: int = 16000) -> Tensor:
    """[n_mels, n_fft // 2 + 1] Slaney-style mel filterbank, the one WhisperFeatureExtractor uses."""
    import torchaudio

    filters = torchaudio.functional.melscale_fbanks(
        n_freqs=N_FFT // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels, sample_rate=sample_rate,
        norm="slaney", mel_scale="slaney")
    return filters.T.contiguous()


def log_mel_spectrogram(waveforms: Tensor, filters: Tensor) -> Tensor:
    """Whisper's log-mel features: [N, samples] -> [N, n_mels, samples // 160].

    log10 of the mel power (floored at 1e-10), at most 8 below each row's maximum, then (x + 4) / 4;
    the same as `WhisperFeatureExtractor` on the same (already padded) samples.
    """
    window = torch.hann_window(N_FFT, device=waveforms.device, dtype=torch.float32)
    stft = torch.stft(waveforms.float(), N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(filters.to(power.device) @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0


class WhisperEncoder(SpeechEncoder):
    """Speech encoder around `transformers`' Whisper encoder.

    `model` is a `WhisperConfig` (random weights, for tests), a `WhisperModel`,
    `WhisperForConditionalGeneration` or HF `WhisperEncoder`; only the encoder is kept.
    `layer`: keep the output of the first `layer` transformer layers (None: all, then the final norm).
    """

    def __init__(self, model, real_length: bool = False, layer: Optional[int] = None, frozen: bool = True,
                 min_seconds: float = 0.0):
        super().__init__(frozen)
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

        if isinstance(model, WhisperConfig):
            model = HFWhisperEncoder(model)
        self.encoder = model if isinstance(model, HFWhisperEncoder) else model.get_encoder()
        config = self.encoder.config
        if layer is not None and not 0 <= layer <= config.encoder_layers:
            raise ValueError(f"layer must be in 0..{config.encoder_layers} for this Whisper, got {layer}")
        self.real_length = real_length
        self.layer = layer
        self.window_frames = 2 * config.max_source_positions  # mel frames per window: 3000 (30 s)
        self.min_mel_frames = min(self.window_frames, round(min_seconds * self.sample_rate / HOP_LENGTH))
        self.output_dim = config.d_model
        self.frame_rate = self.sample_rate / HOP_LENGTH / 2
        self.window_samples = self.window_frames * HOP_LENGTH
        self.register_buffer("mel_filters", mel_filters(config.num_mel_bins, self.sample_rate), persistent=False)
        self.freeze()

    @classmethod
    def from_source(cls, source: str, **kwargs) -> "WhisperEncoder":
        """From any Whisper source `xasr.hub` resolves (local dir, packaged weights, hub id)."""
        from xasr.hub import load_whisper

        return cls(load_whisper(source), **kwargs)

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        """Encoder frames for `lengths` samples: one mel frame per 160 samples, halved by conv2."""
        return torch.div(torch.div(lengths, HOP_LENGTH, rounding_mode="floor") + 1, 2, rounding_mode="floor")

    def encode(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        batch, width = waveforms.shape
        num_windows = max(1, math.ceil(int(lengths.max()) / self.window_samples))
        waveforms = waveforms * lengths_to_mask(lengths, width)  # padding must be silence
        waveforms = F.pad(waveforms, (0, num_windows * self.window_samples - width))
        windows = waveforms.view(batch, num_windows, self.window_samples)
        starts = torch.arange(num_windows, device=lengths.device) * self.window_samples
        window_samples = (lengths[:, None] - starts).clamp(0, self.window_samples)  # [B, W]
        in_use = window_samples > 0  # windows past an utterance's end are not encoded

        window_lengths = self.output_lengths(window_samples[in_use])
        if self.real_length:
            mel_lengths = torch.div(window_samples[in_use], HOP_LENGTH, rounding_mode="floor")
            mel_lengths = mel_lengths.clamp_min(self.min_mel_frames)  # frames past the audio: silence
            num_frames = int(mel_lengths.max())
            # Only the samples these frames see (+ N_FFT of the zeros after them): the same values as
            # the whole window's log-mel, because the frames left out are silence below every maximum.
            samples = min(self.window_samples, num_frames * HOP_LENGTH + N_FFT)
            mel = log_mel_spectrogram(windows[in_use][:, :samples], self.mel_filters)[..., :num_frames]
            hidden = self._encode_mel(mel, mel_lengths)
        else:
            hidden = self._encode_mel(log_mel_spectrogram(windows[in_use], self.mel_filters))  # [N, n_mels, 3000]

        half = self.window_frames // 2
        per_window = hidden.new_zeros(batch, num_windows, half, self.output_dim)
        per_window[in_use] = F.pad(hidden, (0, 0, 0, half - hidden.shape[1]))
        valid = torch.zeros(batch, num_windows, half, dtype=torch.bool, device=hidden.device)
        valid[in_use] = lengths_to_mask(window_lengths, half)
        # every window but an utterance's last is full, so its valid frames are contiguous
        features = (per_window * valid[..., None]).view(batch, num_windows * half, self.output_dim)
        feature_lengths = self.output_lengths(lengths)
        return features[:, : int(feature_lengths.max())], feature_lengths

    def encoded_seconds(self, seconds: float) -> float:
        window = self.window_samples / self.sample_rate
        if not self.real_length:
            return max(1, math.ceil(seconds / window)) * window
        return max(seconds, self.min_mel_frames * HOP_LENGTH / self.sample_rate)

    def _encode_mel(self, mel: Tensor, mel_lengths: Optional[Tensor] = None) -> Tensor:
        """HF WhisperEncoder.forward, except that it accepts fewer than 3000 frames (with lengths)."""
        encoder = self.encoder
        mel = mel.to(encoder.conv1.weight.dtype)
        key_mask = None
        if mel_lengths is not None:
            mel = mel * lengths_to_mask(mel_lengths, mel.shape[-1])[:, None]
        hidden = F.gelu(encoder.conv1(mel))
        if mel_lengths is not None:  # as if each row ended at its length (conv zero padding)
            hidden = hidden * lengths_to_mask(mel_lengths, hidden.shape[-1])[:, None]
        hidden = F.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
        num_frames = hidden.shape[1]
        hidden = hidden + encoder.embed_positions.weight[:num_frames]
        hidden = F.dropout(hidden, p=encoder.dropout, training=encoder.training)
        if mel_lengths is not None:
            # additive [N, 1, 1, S] mask on the keys; at least one key so no row is all -inf
            out_lengths = torch.div(mel_lengths + 1, 2, rounding_mode="floor").clamp_min(1)
            allowed = lengths_to_mask(out_lengths, num_frames)
            key_mask = torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device)
            key_mask = key_mask.masked_fill(~allowed, torch.finfo(hidden.dtype).min)[:, None, None, :]
        num_layers = len(encoder.layers) if self.layer is None else self.layer
        for encoder_layer in encoder.layers[:num_layers]:
            hidden = encoder_layer(hidden, key_mask)
        if self.layer is None:
            hidden = encoder.layer_norm(hidden)
        return hidden
