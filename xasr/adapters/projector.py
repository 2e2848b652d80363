"""SLAM-ASR style baseline adapter: stack k consecutive frames, then a two-layer MLP into the LLM space."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xasr.adapters.cformer import AdapterOutput
from xasr.config import ProjectorConfig
from xasr.encoders.base import lengths_to_mask


class FrameStackProjector(nn.Module):
    def __init__(self, config: ProjectorConfig):
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(nn.Linear(config.stack * config.input_dim, config.hidden_dim), nn.ReLU(),
                                 nn.Linear(config.hidden_dim, config.llm_hidden_size))

    def forward(self, features: Tensor, feature_lengths: Tensor,
                target_lengths: Optional[Tensor] = None) -> AdapterOutput:
        """features [B, T, D] -> [B, ceil(T / k), llm_hidden_size]; `target_lengths` is ignored."""
        batch, frames, dim = features.shape
        k = self.config.stack
        feature_lengths = feature_lengths.to(features.device)
        features = features.masked_fill(~lengths_to_mask(feature_lengths, frames)[..., None], 0.0)
        features = F.pad(features, (0, 0, 0, -frames % k))  # the last group is completed with zeros
        stacked = features.reshape(batch, -1, k * dim)
        lengths = torch.div(feature_lengths + k - 1, k, rounding_mode="floor")
        embeddings = self.mlp(stacked) * self.config.llm_embedding_scale
        embeddings = embeddings * lengths_to_mask(lengths, stacked.shape[1])[..., None]
        return AdapterOutput(embeddings, lengths, None)
