"""CIF: exact token counts, the standard integrate-and-fire result, masking, gradients."""

import math
import random

import pytest
import torch

from xasr.adapters import CIF, integrate_and_fire
from xasr.config import CIFConfig


def reference_cif(hidden, alphas, threshold=1.0, tail_threshold=0.5):
    """The textbook loop, one utterance, float64: fire whenever the accumulator reaches the threshold."""
    tokens, positions = [], []
    accumulated, vector = 0.0, torch.zeros(hidden.shape[1], dtype=torch.float64)
    for t, alpha in enumerate(alphas.tolist()):
        h, frame_alpha = hidden[t].double(), alpha
        while accumulated + alpha >= threshold:
            needed = threshold - accumulated
            tokens.append(vector + needed * h)
            positions.append(t + (frame_alpha - alpha + needed) / frame_alpha)
            alpha -= needed
            accumulated, vector = 0.0, torch.zeros_like(vector)
        accumulated += alpha
        vector = vector + alpha * h
    if accumulated >= tail_threshold * threshold and accumulated > 0:
        tokens.append(vector * threshold / accumulated)
        positions.append(float(len(alphas)))
    stacked = torch.stack(tokens) if tokens else torch.zeros(0, hidden.shape[1], dtype=torch.float64)
    return stacked, positions


def random_batch(generator: random.Random, max_frames=120, dim=4, high=1.0):
    batch = generator.randint(1, 4)
    lengths = torch.tensor([generator.randint(1, max_frames) for _ in range(batch)])
    hidden = torch.randn(batch, int(lengths.max()), dim, dtype=torch.float64)
    alphas = torch.rand(batch, int(lengths.max()), dtype=torch.float64) * high
    alphas = alphas * (torch.arange(alphas.shape[1]) < lengths[:, None])
    return hidden, alphas, lengths


def test_hand_worked_example_splits_the_crossing_frame():
    hidden = torch.eye(3)[None]  # frame t is the unit vector e_t
    tokens, lengths, positions = integrate_and_fire(hidden, torch.tensor([[0.3, 0.9, 0.8]]), torch.tensor([3]))
    assert lengths.tolist() == [2]
    torch.testing.assert_close(tokens[0], torch.tensor([[0.3, 0.7, 0.0], [0.0, 0.2, 0.8]]))
    torch.testing.assert_close(positions[0], torch.tensor([1 + 0.7 / 0.9, 3.0]))


def test_one_frame_can_fire_several_tokens():
    hidden = torch.ones(1, 1, 2)
    tokens, lengths, positions = integrate_and_fire(hidden, torch.tensor([[2.6]]), torch.tensor([1]))
    assert lengths.tolist() == [3]  # two full tokens and a 0.6 tail, rescaled to a full token
    torch.testing.assert_close(tokens[0], torch.ones(3, 2))
    torch.testing.assert_close(positions[0], torch.tensor([1 / 2.6, 2 / 2.6, 1.0]))


@pytest.mark.parametrize("high", [1.0, 2.5])
def test_matches_the_reference_loop_without_targets(high):
    generator = random.Random(0)
    torch.manual_seed(0)
    for _ in range(40):
        hidden, alphas, lengths = random_batch(generator, high=high)
        tokens, token_lengths, positions = integrate_and_fire(hidden, alphas, lengths)
        for b in range(len(lengths)):
            n = int(lengths[b])
            expected, expected_positions = reference_cif(hidden[b, :n], alphas[b, :n])
            total = float(alphas[b].sum())
            assert int(token_lengths[b]) == len(expected) == math.floor(total) + (total % 1 >= 0.5)
            torch.testing.assert_close(tokens[b, : len(expected)], expected, atol=1e-9, rtol=1e-9)
            assert tokens[b, len(expected):].abs().sum() == 0
            torch.testing.assert_close(positions[b].double(), torch.tensor(expected_positions, dtype=torch.float64),
                                       atol=1e-5, rtol=1e-5)


def test_scaled_weights_fire_exactly_the_target_count():
    generator = random.Random(1)
    torch.manual_seed(1)
    for case in range(300):
        dtype = torch.float32 if case % 2 else torch.float64
        hidden, alphas, lengths = random_batch(generator, max_frames=400)
        # targets from 1 token to twice the number of frames (several tokens per frame)
        targets = torch.tensor([generator.randint(1, 2 * int(n)) for n in lengths])
        scaled = (alphas * (targets / alphas.sum(1))[:, None]).to(dtype)
        ones = torch.ones_like(hidden, dtype=dtype)
        tokens, token_lengths, positions = integrate_and_fire(ones, scaled, lengths, target_lengths=targets)
        assert token_lengths.tolist() == targets.tolist()
        assert tokens.shape[1] == int(targets.max())
        for b, n in enumerate(targets.tolist()):
            # every token integrates one threshold's worth of weight, the last one included
            torch.testing.assert_close(tokens[b, :n, 0], torch.ones(n, dtype=dtype), atol=1e-4, rtol=1e-4)
            assert len(positions[b]) == n
            assert bool((positions[b].diff() >= 0).all()) and 0 <= float(positions[b][0])
            assert float(positions[b][-1]) <= int(lengths[b]) + 1e-4


def test_exact_count_when_float_sums_miss_the_target():
    # 0.1 * 30 is not exactly 3 in floating point, either side of the boundary
    for alpha, frames in [(0.1, 30), (0.1, 70), (1 / 3, 9), (0.7, 10)]:
        alphas = torch.full((1, frames), alpha, dtype=torch.float32)
        target = round(alpha * frames)
        _, lengths, positions = integrate_and_fire(torch.ones(1, frames, 2), alphas, torch.tensor([frames]),
                                                   target_lengths=torch.tensor([target]))
        assert lengths.tolist() == [target] and len(positions[0]) == target


def test_target_zero_fires_nothing():
    tokens, lengths, positions = integrate_and_fire(torch.ones(2, 5, 3), torch.full((2, 5), 0.3),
                                                    torch.tensor([5, 3]), target_lengths=torch.tensor([0, 2]))
    assert lengths.tolist() == [0, 2] and tokens.shape == (2, 2, 3) and tokens[0].abs().sum() == 0
    assert [len(p) for p in positions] == [0, 2]


def tiny_cif(**kwargs) -> CIF:
    torch.manual_seed(0)
    return CIF(CIFConfig(input_dim=8, **kwargs)).eval()


def test_module_count_follows_the_tail_rule():
    cif = tiny_cif(tail_threshold=0.5)
    features = torch.randn(3, 50, 8)
    lengths = torch.tensor([50, 31, 7])
    with torch.no_grad():
        out = cif(features, lengths)
    for b in range(3):
        total = float(out.alphas[b].double().sum())
        assert int(out.token_lengths[b]) == math.floor(total) + (total % 1 >= 0.5)
        assert out.alphas[b, int(lengths[b]):].abs().sum() == 0
    assert out.quantity_loss is None
    torch.testing.assert_close(out.predicted_lengths, out.alphas.sum(1))


def test_quantity_loss_trains_the_weight_predictor():
    cif = tiny_cif()
    features = torch.randn(2, 40, 8)
    out = cif(features, torch.tensor([40, 25]), target_lengths=torch.tensor([12, 3]))
    assert out.token_lengths.tolist() == [12, 3]
    torch.testing.assert_close(out.alphas.sum(1), torch.tensor([12.0, 3.0]))
    expected = (out.predicted_lengths - torch.tensor([12.0, 3.0])).abs().mean()
    torch.testing.assert_close(out.quantity_loss, expected)
    out.quantity_loss.backward()
    for parameter in (cif.weight_proj.weight, cif.weight_proj.bias, cif.conv.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_token_vectors_give_gradients_to_the_weights_too():
    cif = tiny_cif()
    out = cif(torch.randn(1, 30, 8), torch.tensor([30]), target_lengths=torch.tensor([5]))
    out.tokens.pow(2).sum().backward()
    assert cif.weight_proj.weight.grad.abs().sum() > 0


def test_padding_frames_contribute_nothing():
    cif = tiny_cif()
    features = torch.randn(2, 30, 8)
    lengths = torch.tensor([30, 17])
    noisy = features.clone()
    noisy[1, 17:] = 1e4 * torch.randn(13, 8)
    for targets in (None, torch.tensor([9, 4])):
        clean_out, noisy_out = cif(features, lengths, targets), cif(noisy, lengths, targets)
        torch.testing.assert_close(clean_out.tokens, noisy_out.tokens)
        torch.testing.assert_close(clean_out.alphas, noisy_out.alphas)
        assert noisy_out.alphas[1, 17:].abs().sum() == 0


def test_batch_matches_single():
    cif = tiny_cif()
    lengths = [23, 40, 9]
    features = torch.randn(3, 40, 8)
    for targets in (None, [7, 11, 2]):
        batched = cif(features, torch.tensor(lengths), None if targets is None else torch.tensor(targets))
        for b, n in enumerate(lengths):
            single = cif(features[b:b + 1, :n], torch.tensor([n]),
                         None if targets is None else torch.tensor(targets[b:b + 1]))
            count = int(single.token_lengths[0])
            assert int(batched.token_lengths[b]) == count
            torch.testing.assert_close(batched.tokens[b, :count], single.tokens[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched.alphas[b, :n], single.alphas[0], atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(batched.firing_positions[b], single.firing_positions[0])
