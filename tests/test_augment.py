import torch

from xasr.augment import MaskingConfig, mask_frames


def test_masks_zero_spans_and_bands_inside_each_utterance_only():
    features = torch.ones(3, 200, 64)
    lengths = torch.tensor([200, 120, 40])
    config = MaskingConfig(time_masks=2, max_time_fraction=0.1, max_time_width=15, feature_masks=2,
                           max_feature_width=8)
    masked = mask_frames(features, lengths, config, generator=torch.Generator().manual_seed(0))
    assert masked.shape == features.shape and features.min() == 1  # the input is left alone
    for b, n in enumerate(lengths.tolist()):
        zero_frames = (masked[b, :n] == 0).all(-1).sum()
        zero_channels = (masked[b, :n] == 0).all(0).sum()
        assert zero_frames <= 2 * min(15, int(0.1 * n))
        assert 0 < zero_channels <= 2 * 8
    # the frames past an utterance's end are never touched except by its channel bands
    assert (masked[2, 40:].sum(-1) == masked[2, 40:].sum(-1)[0]).all()


def test_masks_differ_between_calls_and_disabled_masking_is_the_identity():
    features = torch.randn(2, 100, 32)
    lengths = torch.tensor([100, 80])
    config = MaskingConfig(time_masks=2, feature_masks=2, max_feature_width=8)
    first, second = mask_frames(features, lengths, config), mask_frames(features, lengths, config)
    assert not torch.equal(first, second)
    assert mask_frames(features, lengths, MaskingConfig()) is features


def test_model_masks_only_in_training(monkeypatch):
    from tests.test_model import tiny_batch, tiny_model

    model = tiny_model()
    model.config.masking = MaskingConfig(time_masks=1, feature_masks=1)
    calls = []
    import xasr.model

    monkeypatch.setattr(xasr.model, "mask_frames", lambda f, n, c: calls.append(c) or f)
    model.train()(tiny_batch(), stage=1)
    model.eval()(tiny_batch(), stage=1)
    assert len(calls) == 1 and calls[0].time_masks == 1
