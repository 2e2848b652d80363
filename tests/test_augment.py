import numpy as np
import pytest
import torch

from xasr.augment import augment_cuts, coloured_noise, make_noise_cuts, make_rir_recordings, mask_frames
from xasr.config import AudioAugmentConfig, MaskingConfig


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


# ---- audio-level augmentation ---------------------------------------------------------------------

def _spectral_slope(noise, rate=16000):
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / rate)
    low, high = power[(freqs > 50) & (freqs < 500)].mean(), power[(freqs > 2000) & (freqs < 5000)].mean()
    return low / high


def test_coloured_noise_has_the_spectrum_its_name_says():
    rng = np.random.default_rng(0)
    white, pink, brown = (coloured_noise(k, 32000, 16000, rng) for k in ("white", "pink", "brown"))
    assert 0.5 < _spectral_slope(white) < 2
    assert _spectral_slope(pink) > 5 * _spectral_slope(white)
    assert _spectral_slope(brown) > 5 * _spectral_slope(pink)
    hum = coloured_noise("hum", 32000, 16000, rng)
    spectrum = np.abs(np.fft.rfft(hum))
    assert np.fft.rfftfreq(32000, 1 / 16000)[spectrum.argmax()] in {50, 60, 100, 120, 150, 180}
    assert max(np.abs(x).max() for x in (white, pink, brown, hum)) == pytest.approx(1.0)


@pytest.fixture
def speech_cuts(tmp_path):
    from tests.test_train import tiny_cuts

    (tmp_path / "audio").mkdir()
    return tiny_cuts(tmp_path / "audio", n=6)


def test_augmented_copies_keep_ids_and_texts_change_the_audio_and_repeat_with_the_seed(speech_cuts, tmp_path):
    from xasr.data.dataset import cut_waveform

    noise = make_noise_cuts(tmp_path / "noise", per_kind=1, seconds=2.0)
    rirs = make_rir_recordings(tmp_path / "rir", count=3)
    every = AudioAugmentConfig(speed_factors=(0.9,), reverb_prob=1, noise_prob=1, telephone_prob=1, codec_prob=1,
                               codecs=("vorbis",))
    augmented = augment_cuts(speech_cuts, every, noise=noise, rirs=rirs, copy=2, seed=5)
    assert [c.id for c in augmented] == [f"{c.id}_aug2" for c in speech_cuts]
    assert [c.supervisions[0].text for c in augmented] == [c.supervisions[0].text for c in speech_cuts]
    for original, copy in zip(speech_cuts, augmented):
        clean, noisy = cut_waveform(original), cut_waveform(copy)
        assert len(noisy) == pytest.approx(len(clean) / 0.9, rel=0.02)  # slower speech lasts longer
        assert np.isfinite(noisy).all() and np.abs(noisy).max() > 0
    again = augment_cuts(speech_cuts, every, noise=noise, rirs=rirs, copy=2, seed=5)
    other = augment_cuts(speech_cuts, every, noise=noise, rirs=rirs, copy=2, seed=6)
    assert np.allclose(cut_waveform(again[0]), cut_waveform(augmented[0]), atol=1e-4)
    assert not np.allclose(cut_waveform(other[1])[:4000], cut_waveform(augmented[1])[:4000], atol=1e-3)


def test_no_effects_drawn_leaves_the_audio_as_it_was(speech_cuts):
    from xasr.data.dataset import cut_waveform

    none = AudioAugmentConfig(speed_factors=(1.0,), reverb_prob=0, noise_prob=0, talker_prob=0, telephone_prob=0,
                              codec_prob=0, volume=(1.0, 1.0))
    copy = augment_cuts(speech_cuts, none)[0]
    assert np.allclose(cut_waveform(copy), cut_waveform(speech_cuts[0]), atol=1e-6)


def test_another_talker_underneath_adds_energy_where_the_cut_was_quiet(tmp_path):
    from tests.test_train import tiny_cuts
    from xasr.data.dataset import cut_waveform

    (tmp_path / "a").mkdir()
    cuts = tiny_cuts(tmp_path / "a", n=4)
    talker = AudioAugmentConfig(speed_factors=(1.0,), reverb_prob=0, noise_prob=0, talker_prob=1, telephone_prob=0,
                                codec_prob=0, volume=(1.0, 1.0), talker_snr=(0.0, 0.0))
    mixed = augment_cuts(cuts, talker, seed=1)
    assert any(not np.allclose(cut_waveform(m), cut_waveform(c)) for m, c in zip(mixed, cuts))
    assert all(len(cut_waveform(m)) == len(cut_waveform(c)) for m, c in zip(mixed, cuts))


def test_cli_prepare_augment_writes_the_copies_and_refuses_an_empty_manifest(speech_cuts, tmp_path):
    from lhotse import CutSet
    from typer.testing import CliRunner

    from xasr.cli import app

    speech_cuts.to_file(tmp_path / "cuts.jsonl.gz")
    result = CliRunner().invoke(app, ["prepare", "augment", str(tmp_path / "cuts.jsonl.gz"),
                                      str(tmp_path / "aug.jsonl.gz"), "--copies", "2", "--num-rirs", "4"])
    assert result.exit_code == 0, result.output
    ids = [c.id for c in CutSet.from_file(tmp_path / "aug.jsonl.gz")]
    assert len(ids) == 12 and ids[0].endswith("_aug1") and ids[-1].endswith("_aug2")
    assert len(list((tmp_path / "augment" / "rir").glob("*.wav"))) == 4
    CutSet.from_cuts([]).to_file(tmp_path / "empty.jsonl.gz")
    result = CliRunner().invoke(app, ["prepare", "augment", str(tmp_path / "empty.jsonl.gz"),
                                      str(tmp_path / "x.jsonl.gz")])
    assert result.exit_code == 1 and "has no cuts" in result.output


def test_a_fraction_augments_about_that_share_of_the_cuts(tmp_path):
    from lhotse import CutSet, MonoCut

    cuts = CutSet.from_cuts(MonoCut(id=f"u{i}", start=0, duration=1, channel=0) for i in range(400))
    none = AudioAugmentConfig(speed_factors=(1.0,), reverb_prob=0, noise_prob=0, talker_prob=0, telephone_prob=0,
                              codec_prob=0, volume=(1.0, 1.0))
    half = augment_cuts(cuts, none, fraction=0.5)
    assert 160 < len(half) < 240 and all(c.id.endswith("_aug1") for c in half)


def test_a_grown_set_keeps_the_draws_of_the_cuts_it_had(tmp_path):
    from lhotse import CutSet

    from tests.test_train import tiny_cuts

    cuts = list(tiny_cuts(tmp_path, n=24))
    rirs = make_rir_recordings(tmp_path / "rir", count=3)
    no_talker = AudioAugmentConfig(talker_prob=0)
    small = augment_cuts(CutSet.from_cuts(cuts[:16]), no_talker, rirs=rirs, fraction=0.5, seed=3)
    grown = augment_cuts(CutSet.from_cuts(cuts[8:] + cuts[:8]), no_talker, rirs=rirs, fraction=0.5, seed=3)
    kept = {c.id: c.to_dict() for c in grown}
    assert len(small) >= 4 and all(kept.get(c.id) == c.to_dict() for c in small)


def _tone_with_silence(seconds_before=0.3, seconds=0.6, seconds_after=0.3, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    silence = [np.zeros(int(s * rate)) for s in (seconds_before, seconds_after)]
    return np.concatenate([silence[0], tone, silence[1]]).astype(np.float32)


def test_noise_is_mixed_at_the_asked_snr():
    from xasr.augment import mix_at_snr

    rng = np.random.default_rng(0)
    speech = _tone_with_silence()
    for snr in (10.0, 5.0, 0.0):
        noise = coloured_noise("pink", 4000, 16000, rng)  # shorter than the speech: tiled
        mixed = mix_at_snr(speech, noise, snr)
        added = mixed - speech
        measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
        assert measured == pytest.approx(snr, abs=0.01)


def test_a_burst_hides_the_asked_share_of_the_speech_and_nothing_outside_it():
    from xasr.augment import burst_mask, speech_span

    speech = _tone_with_silence()
    start, end = speech_span(speech, 16000)
    assert abs(start - 0.3 * 16000) <= 320 and abs(end - 0.9 * 16000) <= 320
    masked, (begin, stop) = burst_mask(speech, 16000, 0.35, np.random.default_rng(1))
    assert start <= begin and stop <= end and stop - begin == round(0.35 * (end - start))
    changed = np.flatnonzero(masked != speech)
    assert changed.min() >= begin and changed.max() < stop
    rms = np.sqrt(np.mean(speech[start:end].astype(np.float64) ** 2))
    assert np.sqrt(np.mean(masked[begin:stop].astype(np.float64) ** 2)) == pytest.approx(2 * rms, rel=0.01)
    assert np.corrcoef(masked[begin:stop], speech[begin:stop])[0, 1] < 0.2  # the words under it are gone


def test_degraded_copies_keep_texts_and_pictures_and_repeat_with_the_seed(speech_cuts, tmp_path):
    from xasr.augment import degrade_cuts
    from xasr.data.dataset import cut_waveform, image_of

    for cut in speech_cuts:
        cut.supervisions[0].custom = {"image": f"/pictures/{cut.id}.png"}
    first = degrade_cuts(speech_cuts, tmp_path / "a", snr_db=5.0, mask_fraction=0.3, seed=3, id_suffix="_n")
    again = degrade_cuts(speech_cuts, tmp_path / "b", snr_db=5.0, mask_fraction=0.3, seed=3, id_suffix="_n")
    other = degrade_cuts(speech_cuts, tmp_path / "c", snr_db=5.0, mask_fraction=0.3, seed=4, id_suffix="_n")
    for cut, a, b, c in zip(speech_cuts, first, again, other):
        assert a.id == f"{cut.id}_n" and a.supervisions[0].text == cut.supervisions[0].text
        assert image_of(a) == image_of(cut) and a.duration == pytest.approx(cut.duration, abs=1e-3)
        assert np.array_equal(cut_waveform(a), cut_waveform(b))
        assert not np.allclose(cut_waveform(a), cut_waveform(c), atol=1e-3)
        assert not np.allclose(cut_waveform(a), cut_waveform(cut), atol=1e-3)
    clean = degrade_cuts(speech_cuts, tmp_path / "d")
    assert all(np.allclose(cut_waveform(a), cut_waveform(cut), atol=1e-4) for a, cut in zip(clean, speech_cuts))
