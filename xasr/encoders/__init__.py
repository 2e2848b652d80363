"""Speech encoders behind one interface: `encoder(waveforms [B, T], lengths [B]) -> (features [B, F, D], lengths)`.

Each has `output_dim` and `frame_rate` (output frames per second); see `SpeechEncoder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from xasr.encoders.base import SpeechEncoder, lengths_to_mask
from xasr.encoders.conformer import ConformerConfig, ConformerEncoder
from xasr.encoders.hf_ssl import HFSSLEncoder
from xasr.encoders.whisper import WhisperEncoder, log_mel_spectrogram, mel_filters

KINDS = ("whisper", "hf_ssl", "conformer")


@dataclass
class EncoderConfig:
    kind: str = "whisper"  # "whisper", "hf_ssl" (wav2vec2 / HuBERT / WavLM) or "conformer" (from scratch)
    source: Optional[str] = "whisper-base"  # xasr.hub name, local dir or hub id (whisper, hf_ssl)
    real_length: bool = False  # whisper: encode only the real frames instead of padding to 30 s
    min_seconds: float = 0.0  # whisper real_length: attend over at least this much (audio, then silence)
    layer: Optional[int] = None  # output of this layer instead of the last (whisper, hf_ssl)
    frozen: bool = True
    normalize: Optional[bool] = None  # hf_ssl waveform normalisation; None: the source's do_normalize
    # a transformers config as a dict with "model_type": random weights instead of `source` (tests)
    hf_config: Optional[dict] = None
    conformer: Union[ConformerConfig, dict] = field(default_factory=ConformerConfig)

    def __post_init__(self):
        if isinstance(self.conformer, dict):
            self.conformer = ConformerConfig(**self.conformer)
        if self.kind not in KINDS:
            raise ValueError(f"unknown encoder kind '{self.kind}': use one of {', '.join(KINDS)}")


def build_encoder(config: EncoderConfig) -> SpeechEncoder:
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
