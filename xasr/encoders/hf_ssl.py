"""Self-supervised speech encoders from `transformers`: wav2vec 2.0, HuBERT, WavLM (50 frames/s)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from xasr.encoders.base import SpeechEncoder, lengths_to_mask


class HFSSLEncoder(SpeechEncoder):
    """Last hidden state (or `hidden_states[layer]`) of a wav2vec2-style `transformers` model.

    `model` is the model or its config (random weights, for tests). `normalize`: zero mean, unit
    variance per utterance, as the model's feature extractor does when `do_normalize` is set.
    """

    def __init__(self, model, layer: Optional[int] = None, normalize: bool = True, frozen: bool = True):
        super().__init__(frozen)
        from transformers import AutoModel, PretrainedConfig

        if isinstance(model, PretrainedConfig):
            model = AutoModel.from_config(model)
        self.model = model
        config = model.config
        self.layer = layer
        self.normalize = normalize
        self.output_dim = config.hidden_size
        self.frame_rate = self.sample_rate / math.prod(config.conv_stride)
        # models whose conv feature encoder uses group norm were trained on zero-padded batches
        # without an attention mask (see Wav2Vec2FeatureExtractor.return_attention_mask)
        self.use_attention_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.freeze()

    @classmethod
    def from_source(cls, source: str, **kwargs) -> "HFSSLEncoder":
        """From a local Hugging Face dir or hub id; `normalize` defaults to its `do_normalize`."""
        from transformers import AutoModel

        model = AutoModel.from_pretrained(source, dtype=torch.float32)
        if "normalize" not in kwargs:
            kwargs["normalize"] = _do_normalize(source)
        return cls(model, **kwargs)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.model._get_feat_extract_output_lengths(lengths).long()

    def encode(self, waveforms: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mask = lengths_to_mask(lengths, waveforms.shape[1])
        waveforms = waveforms.float() * mask
        if self.normalize:
            count = lengths[:, None].clamp_min(1)
            mean = waveforms.sum(1, keepdim=True) / count
            variance = ((waveforms - mean) ** 2 * mask).sum(1, keepdim=True) / count
            waveforms = (waveforms - mean) / torch.sqrt(variance + 1e-7) * mask
        output = self.model(
            waveforms.to(next(self.model.parameters()).dtype),
            attention_mask=mask.long() if self.use_attention_mask else None,
            output_hidden_states=self.layer is not None)
        features = output.last_hidden_state if self.layer is None else output.hidden_states[self.layer]
        feature_lengths = self.output_lengths(lengths).clamp(max=features.shape[1])
        features = features * lengths_to_mask(feature_lengths, features.shape[1])[..., None]
        return features, feature_lengths


def _do_normalize(source: str) -> bool:
    """`do_normalize` from the source's preprocessor_config.json (True when it cannot be read)."""
    path = Path(source) / "preprocessor_config.json"
    if path.is_file():
        return bool(json.loads(path.read_text()).get("do_normalize", True))
    try:
        from transformers import AutoFeatureExtractor

        return bool(getattr(AutoFeatureExtractor.from_pretrained(source), "do_normalize", True))
    except OSError:
        return True
