"""Where CIF should fire: token boundaries from a character CTC head's forced alignment.

CIF's quantity loss fixes how many tokens an utterance fires, not where. Local errors of the
predicted weights add up along the utterance, and with the count pinned at both ends (training
scales the weights to the reference's count) they leave the middle of an utterance a token early
or late: a vector integrates the frames of its neighbour and the token head names the neighbour.

A character CTC head on the C-Former's frames (the frames CIF integrates) learns where each letter
is spoken. Forced-aligning the reference's letters (torchaudio's `forced_align`) gives each token
its frames; `boundary_loss` pulls the cumulative CIF weight to k + 1 between the frames of token k
and token k + 1, so each vector integrates its own token. Letters are lower-cased; a space, an
apostrophe, digits and letters are their own classes, other punctuation shares one class and any
other character another, so every token of the LLM's vocabulary has at least one class.
"""

from __future__ import annotations

import string
import warnings
import torch
import torch.nn.functional as F
from torch import Tensor

BLANK = 0
CHARACTERS = [" ", "'"] + list(string.ascii_lowercase) + list(string.digits)  # classes 1..38
PUNCTUATION = len(CHARACTERS) + 1
OTHER = len(CHARACTERS) + 2
NUM_CLASSES = OTHER + 1  # with the blank
_CLASS = {c: i + 1 for i, c in enumerate(CHARACTERS)}


def character_classes(text: str) -> list[int]:
    """The CTC classes of a token's text (at least one: a token with no text is OTHER)."""
    classes = []
    for char in text.lower():
        if char in _CLASS:
            classes.append(_CLASS[char])
        elif char.isspace():
            classes.append(_CLASS[" "])
        else:
            classes.append(PUNCTUATION if char in string.punctuation else OTHER)
    return classes or [OTHER]


def character_ctc_loss(log_probs: Tensor, lengths: Tensor, targets: list[list[int]]) -> Tensor:
    """Mean per-utterance CTC loss (divided by each target's length) of log_probs [B, T, C]."""
    flat = torch.tensor([c for t in targets for c in t], dtype=torch.long, device=log_probs.device)
    target_lengths = torch.tensor([len(t) for t in targets], device=log_probs.device)
    return F.ctc_loss(log_probs.transpose(0, 1).float(), flat, lengths, target_lengths, blank=BLANK,
                      reduction="mean", zero_infinity=True)


@torch.no_grad()
def token_boundaries(log_probs: Tensor, length: int, tokens: list[list[int]]) -> Tensor | None:
    """Fractional frame positions [N - 1] between consecutive tokens of one utterance: midway between the
    last frame of token k's letters and the first frame of token k + 1's, by the forced alignment of
    log_probs [T, C] (first `length` frames) to the tokens' classes. None where no alignment exists
    (more letters than frames can hold)."""
    classes = [c for t in tokens for c in t]
    repeats = sum(a == b for a, b in zip(classes, classes[1:]))
    if len(tokens) < 2 or len(classes) + repeats > length:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio announces forced_align's move to another package
        from torchaudio.functional import forced_align, merge_tokens

        targets = torch.tensor([classes], dtype=torch.int32)
        path, scores = forced_align(log_probs[None, :length].float().cpu(), targets, blank=BLANK)
        spans = merge_tokens(path[0], scores[0].exp())
    if len(spans) != len(classes):
        return None
    ends = torch.tensor([len(t) for t in tokens]).cumsum(0)  # index past each token's last letter
    last_frame = torch.tensor([spans[int(e) - 1].end - 1 for e in ends[:-1]], dtype=torch.float64)
    next_first = torch.tensor([spans[int(e)].start for e in ends[:-1]], dtype=torch.float64)
    return (last_frame + next_first) / 2


def boundary_loss(alphas: Tensor, boundaries: list[Tensor | None]) -> Tensor:
    """Mean |c(b_k) - (k + 1)| over the boundaries of the utterances that have them, with c the cumulative
    CIF weight [B, T] (in thresholds) after frame floor(b_k), read between frames by linear interpolation."""
    cumulative = torch.cumsum(alphas, dim=1)
    errors = []
    for row, positions in enumerate(boundaries):
        if positions is None or len(positions) == 0:
            continue
        positions = positions.to(cumulative.device, cumulative.dtype).clamp(0, cumulative.shape[1] - 1)
        low = positions.floor().long()
        high = (low + 1).clamp(max=cumulative.shape[1] - 1)
        share = positions - low
        value = cumulative[row, low] * (1 - share) + cumulative[row, high] * share
        target = torch.arange(1, len(positions) + 1, device=value.device, dtype=value.dtype)
        errors.append((value - target).abs())
    if not errors:
        return alphas.sum() * 0.0
    return torch.cat(errors).mean()
