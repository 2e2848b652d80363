"""Token boundaries from a character CTC head's forced alignment, and the loss that moves CIF to them."""

import math

import torch

from xasr.adapters.alignment import (BLANK, NUM_CLASSES, OTHER, PUNCTUATION, boundary_loss, character_classes,
                                     character_ctc_loss, token_boundaries)
from xasr.adapters.cif import CIF
from xasr.config import CIFConfig


def test_every_token_has_classes_and_case_does_not_matter():
    assert character_classes(" The") == character_classes(" the") and len(character_classes(" the")) == 4
    assert character_classes(",") == [PUNCTUATION]
    assert character_classes("") == [OTHER] and character_classes("é") == [OTHER]
    assert all(0 < c < NUM_CLASSES for c in character_classes(" it's 42!"))


def emissions_at(frames: int, placed: dict[int, int]) -> torch.Tensor:
    """Log-probs [T, C]: blank everywhere except class c at frame t for each t -> c in `placed`."""
    logits = torch.full((frames, NUM_CLASSES), -10.0)
    logits[:, BLANK] = 0.0
    for t, c in placed.items():
        logits[t, c], logits[t, BLANK] = 0.0, -10.0
    return logits.log_softmax(-1)


def test_boundaries_fall_between_the_letters_of_consecutive_tokens():
    tokens = [character_classes(t) for t in ("go", " on", ".")]  # g o | ' ' o n | .
    letters = [c for t in tokens for c in t]
    frames = [3, 5, 12, 14, 16, 25]
    log_probs = emissions_at(30, dict(zip(frames, letters)))
    boundaries = token_boundaries(log_probs, 30, tokens)
    assert boundaries.tolist() == [(5 + 12) / 2, (16 + 25) / 2]
    assert token_boundaries(log_probs, 4, tokens) is None  # six letters cannot fit in four frames
    assert token_boundaries(log_probs, 30, tokens[:1]) is None  # one token: nothing to place


def test_character_ctc_loss_prefers_the_right_letters():
    tokens = [character_classes(t) for t in ("go", " on")]
    letters = [c for t in tokens for c in t]
    right = emissions_at(20, dict(zip([2, 4, 9, 11, 13], letters)))
    wrong = emissions_at(20, dict(zip([2, 4, 9, 11, 13], reversed(letters))))
    lengths = torch.tensor([20])
    assert character_ctc_loss(right[None], lengths, [letters]) < character_ctc_loss(wrong[None], lengths, [letters])


def test_boundary_loss_is_zero_on_target_and_moves_cif_to_the_boundaries():
    alphas = torch.tensor([[0.5, 0.5, 0.25, 0.25, 0.5, 1.0]])
    assert float(boundary_loss(alphas, [torch.tensor([1.0, 4.0])])) == 0.0  # c = 1 after frame 1, 2 after 4
    assert float(boundary_loss(alphas, [None])) == 0.0

    torch.manual_seed(0)
    frames, tokens = 60, 6
    features = torch.randn(1, frames, 8)
    boundaries = torch.tensor([4.0, 9.0, 30.0, 33.0, 50.0])  # uneven: a uniform CIF is far off
    cif = CIF(CIFConfig(input_dim=8, kernel_size=3))
    optimiser = torch.optim.Adam(cif.parameters(), lr=0.05)
    lengths, targets = torch.tensor([frames]), torch.tensor([tokens])

    def error() -> float:
        with torch.no_grad():
            fired = cif(features, lengths, targets).firing_positions[0][:-1]
        return float((fired - boundaries).abs().mean())

    before = error()
    for _ in range(300):
        loss = boundary_loss(cif(features, lengths, targets).alphas, [boundaries])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = error()
    assert before > 4 and after < before / 3 and math.isfinite(after), (before, after)
