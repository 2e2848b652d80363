"""Speech encoders behind one interface: `encoder(waveforms [B, T], lengths [B]) -> (features [B, F, D], lengths)`.

Each has `output_dim` and `frame_rate` (output frames per second); see `SpeechEncoder`.
"""

from __future__ import annotations

import torch

from xasr.config import ConformerConfig, EncoderConfig
from xasr.encoders.base import SpeechEncoder, lengths_to_mask
from xasr.encoders.conformer import ConformerEncoder
from xasr.encoders.hf_ssl import HFSSLEncoder
from xasr.encoders.whisper import WhisperEncoder, log_mel_spectrogram, mel_filters
from xasr.nn import resolve_dtype


def build_encoder(config: EncoderConfig) -> SpeechEncoder:
    encoder, dtype = _build(config), resolve_dtype(config.dtype)
    return encoder.run_in(dtype) if dtype != torch.float32 else encoder


def _build(config: EncoderConfig) -> SpeechEncoder:
    if config.kind == "conformer":
        return ConformerEncoder(config.conformer, frozen=config.frozen)
    hf_config = None
    if config.hf_config is not None:
        from transformers import AutoConfig

        settings = dict(config.hf_config)
        hf_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    elif not config.source:
        raise ValueError(f"a {config.kind} encoder needs a source (or hf_config for random weights)")
    if config.kind == "whisper":
        kwargs = dict(real_length=config.real_length, min_seconds=config.min_seconds, layer=config.layer,
                      frozen=config.frozen)
        return WhisperEncoder(hf_config, **kwargs) if hf_config is not None \
            else WhisperEncoder.from_source(config.source, **kwargs)
    kwargs = dict(layer=config.layer, frozen=config.frozen)
    if config.normalize is not None:
        kwargs["normalize"] = config.normalize
    return HFSSLEncoder(hf_config, **kwargs) if hf_config is not None \
        else HFSSLEncoder.from_source(config.source, **kwargs)


__all__ = [
    "ConformerConfig", "ConformerEncoder", "EncoderConfig", "HFSSLEncoder", "SpeechEncoder", "WhisperEncoder",
    "build_encoder", "lengths_to_mask", "log_mel_spectrogram", "mel_filters",
]
