"""Speech encoders on tiny random configs: features, lengths, windowing past 30 s, masking."""

import numpy as np
import pytest
import torch

from xasr.config import ConformerConfig, EncoderConfig
from xasr.encoders import (
    ConformerEncoder,
    HFSSLEncoder,
    WhisperEncoder,
    build_encoder,
    log_mel_spectrogram,
    mel_filters,
)

SECOND = 16000
TINY_WHISPER = dict(model_type="whisper", d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
                    decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=80, vocab_size=100)


def tiny_whisper(real_length: bool, **kwargs) -> WhisperEncoder:
    torch.manual_seed(0)
    return build_encoder(EncoderConfig(kind="whisper", hf_config=TINY_WHISPER, real_length=real_length, **kwargs))


def noise(*lengths: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    waveforms = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        waveforms[i, :n] = 0.1 * torch.randn(n, generator=generator)
    return waveforms, torch.tensor(lengths)


def test_log_mel_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80)
    t = np.arange(3 * SECOND) / SECOND
    for audio in [0.3 * np.sin(2 * np.pi * 440 * t), noise(5 * SECOND)[0][0].numpy()]:
        expected = extractor(audio.astype(np.float32), sampling_rate=SECOND, return_tensors="np").input_features[0]
        padded = torch.nn.functional.pad(torch.from_numpy(audio).float(), (0, 30 * SECOND - len(audio)))
        ours = log_mel_spectrogram(padded[None], mel_filters(80))[0].numpy()
        assert ours.shape == expected.shape == (80, 3000)
        np.testing.assert_allclose(ours, expected, atol=2e-4)


def test_padded_mode_is_the_hugging_face_encoder():
    encoder = tiny_whisper(real_length=False)
    waveforms, lengths = noise(4 * SECOND)
    features, feature_lengths = encoder(waveforms, lengths)
    assert features.shape == (1, 200, 16) and feature_lengths.tolist() == [200]
    mel = log_mel_spectrogram(torch.nn.functional.pad(waveforms, (0, 26 * SECOND)), encoder.mel_filters)
    with torch.no_grad():
        expected = encoder.encoder(mel).last_hidden_state[:, :200]
    torch.testing.assert_close(features, expected)


@pytest.mark.parametrize("real_length", [False, True])
def test_sixty_seconds_are_not_truncated(real_length):
    encoder = tiny_whisper(real_length)
    waveforms, lengths = noise(60 * SECOND, 7 * SECOND + 77)
    features, feature_lengths = encoder(waveforms, lengths)
    assert feature_lengths.tolist() == [3000, 350]  # ceil((n // 160) / 2)
    assert features.shape == (2, 3000, 16)
    assert features[0, 1490:1510].abs().sum(-1).min() > 0  # both windows filled, joined at frame 1500
    assert features[1, 350:].abs().sum() == 0


def test_real_length_batch_matches_single_and_whisper_frame_rate():
    encoder = tiny_whisper(real_length=True)
    assert encoder.frame_rate == 50 and encoder.output_dim == 16
    lengths = [3 * SECOND + 5, 31 * SECOND, SECOND // 2]
    waveforms, lengths_tensor = noise(*lengths)
    features, feature_lengths = encoder(waveforms, lengths_tensor)
    assert feature_lengths.tolist() == [(n // 160 + 1) // 2 for n in lengths]
    for b, n in enumerate(lengths):
        single, single_lengths = encoder(waveforms[b:b + 1, :n], torch.tensor([n]))
        count = int(single_lengths[0])
        torch.testing.assert_close(features[b, :count], single[0], atol=1e-5, rtol=1e-5)


def test_min_seconds_attends_over_silence_and_keeps_the_real_frames():
    """real_length with min_seconds 30 is the padded encoder; in between, only the real frames come out
    and a batch still matches each utterance alone."""
    lengths = [3 * SECOND + 5, SECOND // 2, 12 * SECOND]
    waveforms, lengths_tensor = noise(*lengths)
    padded, padded_lengths = tiny_whisper(real_length=False)(waveforms, lengths_tensor)
    full, full_lengths = tiny_whisper(real_length=True, min_seconds=30.0)(waveforms, lengths_tensor)
    assert full_lengths.tolist() == padded_lengths.tolist()
    torch.testing.assert_close(full, padded, atol=1e-5, rtol=1e-5)

    encoder = tiny_whisper(real_length=True, min_seconds=5.0)
    features, feature_lengths = encoder(waveforms, lengths_tensor)
    real, _ = tiny_whisper(real_length=True)(waveforms, lengths_tensor)
    assert feature_lengths.tolist() == [(n // 160 + 1) // 2 for n in lengths]
    assert features[1, 25:].abs().sum() == 0  # 0.5 s: 25 frames, the silence after it is not output
    assert not torch.allclose(features[1, :25], real[1, :25])  # ...but was attended to
    torch.testing.assert_close(features[2], real[2])  # 12 s > 5 s: unchanged
    single, _ = encoder(waveforms[1:2, : lengths[1]], torch.tensor(lengths[1:2]))
    torch.testing.assert_close(features[1, :25], single[0], atol=1e-5, rtol=1e-5)


def test_real_length_encodes_the_same_log_mel_as_the_whole_window():
    """Real length computes the log-mel of only the samples its frames need; the frames must be those
    of the whole 30 s window (its silent rest cannot raise a row's maximum)."""
    lengths = [3 * SECOND + 77, SECOND // 2]
    waveforms, lengths_tensor = noise(*lengths)
    for min_seconds in (0.0, 2.0):
        encoder = tiny_whisper(real_length=True, min_seconds=min_seconds)
        features, feature_lengths = encoder(waveforms, lengths_tensor)
        mel = log_mel_spectrogram(torch.nn.functional.pad(waveforms, (0, 27 * SECOND)), encoder.mel_filters)
        mel_lengths = (lengths_tensor // 160).clamp_min(encoder.min_mel_frames)
        with torch.no_grad():
            expected = encoder._encode_mel(mel[..., : int(mel_lengths.max())], mel_lengths)
        for b, count in enumerate(feature_lengths.tolist()):
            torch.testing.assert_close(features[b, :count], expected[b, :count], atol=1e-5, rtol=1e-5)


def test_encoded_seconds_counts_whisper_padding():
    assert tiny_whisper(real_length=False).encoded_seconds(0.5) == 30.0
    assert tiny_whisper(real_length=False).encoded_seconds(31.0) == 60.0
    assert tiny_whisper(real_length=True).encoded_seconds(0.5) == 0.5
    assert tiny_whisper(real_length=True, min_seconds=5.0).encoded_seconds(0.5) == 5.0
    assert tiny_whisper(real_length=True, min_seconds=5.0).encoded_seconds(7.0) == 7.0


def test_whisper_layer_choice_and_freezing():
    encoder = tiny_whisper(real_length=True, layer=1)
    assert all(not p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not encoder.encoder.training
    features, _ = encoder(*noise(SECOND))
    assert features.shape == (1, 50, 16) and not features.requires_grad
    trainable = tiny_whisper(real_length=True, frozen=False).train()
    assert trainable.training and trainable(*noise(SECOND))[0].requires_grad


TINY_SSL = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # inside WavLM
@pytest.mark.parametrize("model_type,norm", [("wav2vec2", "layer"), ("hubert", "group"), ("wavlm", "layer")])
def test_ssl_encoder_lengths(model_type, norm):
    torch.manual_seed(0)
    config = EncoderConfig(kind="hf_ssl", hf_config=dict(model_type=model_type, feat_extract_norm=norm,
                                                         do_stable_layer_norm=norm == "layer", **TINY_SSL))
    encoder = build_encoder(config)
    assert isinstance(encoder, HFSSLEncoder) and encoder.frame_rate == 50 and encoder.output_dim == 16
    lengths = [SECOND, 7000]
    waveforms, lengths_tensor = noise(*lengths)
    features, feature_lengths = encoder(waveforms, lengths_tensor)
    expected = encoder.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
    assert feature_lengths.tolist() == expected == [49, 21]
    assert features.shape == (2, 49, 16) and features[1, 21:].abs().sum() == 0
    if norm == "layer":  # attention-masked models give the same frames batched or alone
        single, _ = encoder(waveforms[1:, :7000], torch.tensor([7000]))
        torch.testing.assert_close(features[1, :21], single[0], atol=1e-4, rtol=1e-4)


def test_ssl_encoder_layer_choice():
    from transformers import Wav2Vec2Config

    torch.manual_seed(0)
    encoder = HFSSLEncoder(Wav2Vec2Config(**TINY_SSL), layer=1)
    features, lengths = encoder(*noise(SECOND))
    assert features.shape == (1, 49, 16) and lengths.tolist() == [49]


def test_conformer_lengths_and_batch_consistency():
    torch.manual_seed(0)
    config = EncoderConfig(kind="conformer", conformer={"d_model": 16, "n_layers": 2, "n_heads": 2})
    assert isinstance(config.conformer, ConformerConfig)
    encoder = build_encoder(config)
    assert isinstance(encoder, ConformerEncoder) and encoder.frame_rate == 25 and encoder.output_dim == 16
    lengths = [2 * SECOND, 5000, 100]
    waveforms, lengths_tensor = noise(*lengths)
    features, feature_lengths = encoder(waveforms, lengths_tensor)
    mel_frames = [n // 160 + 1 for n in lengths]
    assert feature_lengths.tolist() == [-(-(-(-m // 2)) // 2) for m in mel_frames] == [51, 8, 1]
    assert features.shape == (3, 51, 16) and features[1, 8:].abs().sum() == 0
    for b, n in enumerate(lengths):
        single, _ = encoder(waveforms[b:b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(features[b, : single.shape[1]], single[0], atol=1e-4, rtol=1e-4)


def test_conformer_trains_from_scratch():
    torch.manual_seed(0)
    encoder = ConformerEncoder(ConformerConfig(d_model=16, n_layers=1, n_heads=2), frozen=False).train()
    features, _ = encoder(*noise(SECOND))
    features.pow(2).mean().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown encoder kind"):
        EncoderConfig(kind="mystery")


def test_bfloat16_whisper_gives_float32_frames_close_to_float32_weights():
    encoders = {dtype: tiny_whisper(True, dtype=dtype) for dtype in ("float32", "bfloat16")}
    assert {p.dtype for p in encoders["bfloat16"].parameters()} == {torch.bfloat16}
    waveforms, lengths = noise(SECOND, 7000)
    (exact, exact_lengths), (fast, fast_lengths) = (encoders[d](waveforms, lengths) for d in ("float32", "bfloat16"))
    assert fast.dtype == torch.float32 and fast_lengths.tolist() == exact_lengths.tolist()
    relative = (fast - exact).norm() / exact.norm()
    assert 0 < relative < 0.05


def test_only_a_frozen_whisper_runs_in_bfloat16():
    for kind, frozen in (("conformer", False), ("hf_ssl", True), ("whisper", False)):
        with pytest.raises(ValueError, match="frozen Whisper"):
            EncoderConfig(kind=kind, frozen=frozen, dtype="bfloat16")
    with pytest.raises(ValueError, match="unknown encoder dtype"):
        EncoderConfig(dtype="float16")
