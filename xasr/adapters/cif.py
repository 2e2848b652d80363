"""Continuous integrate-and-fire (Dong & Xu, 2020): frames in, one vector per token out.

Each frame t gets a weight alpha_t in (0, 1). Walking over the frames, the weights accumulate; each
time the total crosses a multiple of the threshold a token fires, integrating the frames since the
previous firing, each weighted by the part of its alpha that falls inside that token. The frame
that crosses the threshold is split between the token it completes and the next one.

Here that is computed without a loop: with c_t the cumulative weight (in thresholds) up to and
including frame t, frame t covers the interval [c_{t-1}, c_t) and gives token j (covering [j, j+1))
the overlap of the two intervals. That also lets one frame fire several tokens (alpha > threshold,
which scaling to a long target can produce).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xasr.config import CIFConfig
from xasr.encoders.base import lengths_to_mask


@dataclass
class CIFOutput:
    tokens: Tensor  # [B, N, D] integrated vectors, zero past each token_lengths[b]
    token_lengths: Tensor  # [B]
    alphas: Tensor  # [B, T] the weights integrated (scaled to the targets when those are given)
    quantity_loss: Optional[Tensor]  # mean |sum(predicted alphas) / threshold - target|, with targets
    firing_positions: list[Tensor]  # per utterance: fractional frame index where each token fired
    predicted_lengths: Tensor  # [B] sum of the predicted (unscaled) alphas, in thresholds


def integrate_and_fire(
    hidden: Tensor,
    alphas: Tensor,
    lengths: Tensor,
    threshold: float = 1.0,
    target_lengths: Optional[Tensor] = None,
    tail_threshold: float = 0.5,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Integrate `hidden` [B, T, D] with per-frame `alphas` [B, T] (zero past `lengths`).

    With `target_lengths`, exactly that many tokens fire per utterance: `alphas` should already sum
    to target * threshold, and the last token takes whatever weight remains after the one before
    it, so floating-point error cannot add or lose a token. Without, floor(sum / threshold) tokens
    fire, plus one for a leftover of at least `tail_threshold` thresholds, rescaled to a full token.
    Returns tokens [B, N, D], token_lengths [B] and the firing positions (fractional frame index).
    """
    if hidden.shape[1] == 0:  # one silent frame keeps the indexing below simple
        hidden, alphas = F.pad(hidden, (0, 0, 0, 1)), F.pad(alphas, (0, 1))
    batch, frames, dim = hidden.shape
    # float64 so that token boundaries do not drift over thousands of frames
    cumulative = torch.cumsum(alphas.double(), dim=1) / threshold  # c_t
    previous = F.pad(cumulative[:, :-1], (1, 0))  # c_{t-1}
    total = cumulative[:, -1]
    first = previous.floor().long()  # the token each frame starts in
    last = cumulative.floor().long()  # the token it ends in
    if target_lengths is not None:
        num_tokens = target_lengths.to(device=hidden.device, dtype=torch.long)
        # a frame past the last boundary (float drift) belongs to the last token
        first = torch.minimum(first, (num_tokens - 1).clamp_min(0)[:, None])
        last = torch.minimum(last, (num_tokens - 1).clamp_min(0)[:, None])
        tail_scale = None
    else:
        fired = total.floor()
        leftover = total - fired
        has_tail = (leftover >= tail_threshold) & (leftover > 0)
        num_tokens = fired.long() + has_tail.long()
        tail_scale = torch.where(has_tail, 1.0 / leftover.clamp_min(1e-12), torch.ones_like(leftover))
    max_tokens = int(num_tokens.max()) if batch else 0

    valid_frames = lengths_to_mask(lengths.to(hidden.device), frames)
    spread = int((last - first).masked_fill(~valid_frames, 0).max()) + 1
    offsets = torch.arange(spread, device=hidden.device)
    token = first[..., None] + offsets  # [B, T, K]: the tokens frame t may contribute to
    lower = torch.maximum(previous[..., None], token.double())
    upper = torch.minimum(cumulative[..., None], token.double() + 1)
    if target_lengths is not None:
        is_last = token == (num_tokens - 1)[:, None, None]
        upper = torch.where(is_last, cumulative[..., None].expand_as(upper), upper)
    weights = (upper - lower).clamp_min(0) * threshold
    if tail_scale is not None:
        is_tail = token == fired.long()[:, None, None]
        weights = torch.where(is_tail, weights * tail_scale[:, None, None], weights)
    in_range = (token >= 0) & (token < num_tokens[:, None, None]) & valid_frames[..., None]
    weights = weights.masked_fill(~in_range, 0.0).to(hidden.dtype)
    index = torch.where(in_range, token, torch.full_like(token, max_tokens))  # max_tokens: a discarded slot

    tokens = hidden.new_zeros(batch, max_tokens + 1, dim)
    for k in range(spread):  # one scatter per offset keeps memory at [B, T, D]
        tokens = tokens.scatter_add(1, index[..., k, None].expand(-1, -1, dim), weights[..., k, None] * hidden)
    tokens = tokens[:, :max_tokens]
    return tokens, num_tokens, firing_positions(cumulative.detach(), previous.detach(), lengths, num_tokens)


def firing_positions(cumulative: Tensor, previous: Tensor, lengths: Tensor, num_tokens: Tensor) -> list[Tensor]:
    """Where the accumulator crossed 1, 2, ... N (fractional frame index; the end for a tail token)."""
    batch = cumulative.shape[0]
    max_tokens = int(num_tokens.max()) if batch else 0
    boundaries = torch.arange(1, max_tokens + 1, device=cumulative.device, dtype=cumulative.dtype)
    boundaries = boundaries.expand(batch, -1).contiguous()
    frame = torch.searchsorted(cumulative.contiguous(), boundaries)  # first t with c_t >= boundary
    found = frame < lengths.to(frame.device)[:, None]
    frame = frame.clamp(max=max(cumulative.shape[1] - 1, 0))
    start = previous.gather(1, frame)
    width = (cumulative.gather(1, frame) - start).clamp_min(1e-12)
    position = frame + ((boundaries - start) / width).clamp(0, 1)
    end = lengths.to(position)[:, None].expand_as(position)
    position = torch.where(found, torch.minimum(position, end), end)
    return [position[b, : int(num_tokens[b])].float() for b in range(batch)]


class CIF(nn.Module):
    """Weight predictor (conv over frames, linear, sigmoid) + integrate-and-fire."""

    def __init__(self, config: CIFConfig):
        super().__init__()
        self.config = config
        dim = config.input_dim
        self.conv = nn.Conv1d(dim, dim, config.kernel_size, padding=config.kernel_size // 2, groups=config.conv_groups)
        self.weight_proj = nn.Linear(dim, 1)

    def predict_weights(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """alpha [B, T] in (0, 1), zero on padding; padding frames never reach the convolution."""
        context = self.conv(hidden.transpose(1, 2)).transpose(1, 2)
        return torch.sigmoid(self.weight_proj(F.relu(context + hidden))).squeeze(-1) * mask

    def forward(self, hidden: Tensor, lengths: Tensor, target_lengths: Optional[Tensor] = None) -> CIFOutput:
        """hidden [B, T, D], lengths [B]; `target_lengths` [B] (training) fixes the token counts."""
        lengths = lengths.to(hidden.device)
        mask = lengths_to_mask(lengths, hidden.shape[1])
        hidden = hidden.masked_fill(~mask[..., None], 0.0)
        alphas = self.predict_weights(hidden, mask)
        threshold = self.config.threshold
        predicted_lengths = alphas.sum(1) / threshold
        quantity_loss = None
        if target_lengths is not None:
            targets = target_lengths.to(alphas)
            quantity_loss = (predicted_lengths - targets).abs().mean()
            alphas = scale_to_targets(alphas, mask, target_lengths * threshold)
        # integrated in float32 even under bfloat16 autocast: each token sums many frames
        tokens, token_lengths, positions = integrate_and_fire(
            hidden.float(), alphas.float(), lengths, threshold, target_lengths, self.config.tail_threshold)
        return CIFOutput(tokens, token_lengths, alphas.float(), quantity_loss, positions, predicted_lengths)


def scale_to_targets(alphas: Tensor, mask: Tensor, target_sums: Tensor) -> Tensor:
    """Rescale each row to sum to its target (float64, so the sum is exact to ~1e-12 over long audio).

    A row whose weights all underflowed to zero gets the target spread evenly over its frames.
    """
    alphas = alphas.double()
    target_sums = target_sums.to(alphas)
    sums = alphas.sum(1)
    scaled = alphas * (target_sums / sums.clamp_min(torch.finfo(alphas.dtype).tiny))[:, None]
    uniform = mask * (target_sums / mask.sum(1).clamp_min(1))[:, None]
    return torch.where((sums > 0)[:, None], scaled, uniform)
