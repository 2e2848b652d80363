"""The Q-Former (X-LLM's image and video interface): K learned queries read frozen patch features.

Each layer lets the queries attend to each other, then (cross-attention) to the patch features of
the frozen vision encoder, then an MLP; the K query vectors are projected into the LLM's embedding
space, at its embedding scale (see xasr/adapters/cformer.py), and stand for `<image>` or `<video>`.

Video: a clip is T frames, each encoded on its own. Every frame's patches get a learned embedding
of the frame's index, and the queries read all frames' patches at once, so they can summarise what
changes over time as well as what is there; missing frames (clips shorter than the batch's longest)
are masked. An image is a clip of one frame.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from xasr.adapters.cformer import AdapterOutput
from xasr.config import QFormerConfig
from xasr.nn import TransformerBlock


class QFormer(nn.Module):
    """patch features [B, N, D] (images) or [B, T, N, D] (clips) -> K embeddings each in the LLM's space."""

    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.config = config
        self.queries = nn.Parameter(0.02 * torch.randn(config.num_queries, config.d_model))
        self.input_norm = nn.LayerNorm(config.input_dim)
        self.input_proj = nn.Linear(config.input_dim, config.d_model)
        self.frame_embedding = nn.Embedding(config.max_frames, config.d_model)
        self.blocks = nn.ModuleList([
            TransformerBlock(config.d_model, config.n_heads, config.ff_mult, config.dropout, context_dim=config.d_model)
            for _ in range(config.n_layers)])
        self.norm = nn.LayerNorm(config.d_model)
        self.output_proj = nn.Linear(config.d_model, config.llm_hidden_size)
        if config.match_token_norm:
            self.output_gain = nn.Parameter(torch.ones(()))

    def forward(self, features: Tensor, frame_mask: Optional[Tensor] = None) -> AdapterOutput:
        """`features`: [B, N, D] or [B, T, N, D]; `frame_mask` [B, T]: True for real frames (clips)."""
        if features.dim() == 3:
            features = features[:, None]
        batch, frames, patches, _ = features.shape
        if frames > self.config.max_frames:
            raise ValueError(f"{frames} frames per clip, more than this Q-Former's max_frames "
                             f"({self.config.max_frames}): sample fewer frames")
        if frame_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=features.device)
        context = self.input_proj(self.input_norm(features))
        context = context + self.frame_embedding(torch.arange(frames, device=features.device))[:, None]
        context = context.reshape(batch, frames * patches, -1)
        context_mask = frame_mask.clone()
        context_mask[:, 0] = True  # a row with no frame still attends somewhere (its output is unused)
        context_mask = context_mask.repeat_interleave(patches, dim=1)
        x = self.queries.expand(batch, -1, -1)
        query_mask = torch.ones(batch, x.shape[1], dtype=torch.bool, device=x.device)
        for block in self.blocks:
            x = block(x, query_mask, context, context_mask)
        embeddings = self.output_proj(self.norm(x))
        if self.config.match_token_norm:
            embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            embeddings = embeddings * (self.output_gain * self.config.llm_token_norm)
        embeddings = embeddings * self.config.llm_embedding_scale
        lengths = torch.where(frame_mask.any(dim=1), x.shape[1], 0)
        return AdapterOutput(embeddings * (lengths > 0)[:, None, None], lengths)
