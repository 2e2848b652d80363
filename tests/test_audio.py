import struct

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import write_tone
from xasr.audio import AudioError, load_audio


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_formats_decode_to_16k_mono(tmp_path, ext, fmt):
    path = tmp_path / f"tone.{ext}"
    write_tone(path, seconds=1.0, rate=16000, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 2000  # lossy codecs pad a little
    assert 0.1 < np.abs(audio).max() < 0.5


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_16k(tmp_path, rate):
    path = tmp_path / "tone.wav"
    write_tone(path, seconds=0.5, rate=rate)
    audio = load_audio(path)
    assert len(audio) == 8000
    # the resampled tone keeps its frequency: compare with a tone written at 16 kHz
    expected = write_tone(tmp_path / "ref.wav", seconds=0.5, rate=16000)[:, 0]
    assert np.abs(audio[200:-200] - expected[200:-200]).max() < 0.02


def test_channels_are_averaged(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.full(1600, 0.5, dtype=np.float32)
    sf.write(str(path), np.stack([left, -left * 0.5], axis=1), 16000, subtype="FLOAT")
    audio = load_audio(path)
    np.testing.assert_allclose(audio, 0.125, atol=1e-6)
    write_tone(tmp_path / "six.wav", channels=6)
    assert load_audio(tmp_path / "six.wav").ndim == 1


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file") as e:
        load_audio(tmp_path / "nope.wav")
    assert "nope.wav" in str(e.value) and e.value.path.endswith("nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load_audio(tmp_path / "empty.wav")


def test_not_audio(tmp_path):
    (tmp_path / "notes.wav").write_text("this is a text file, not audio\n" * 20)
    with pytest.raises(AudioError, match="not a readable audio file") as e:
        load_audio(tmp_path / "notes.wav")
    assert "notes.wav" in str(e.value)


def test_header_only_wav_has_no_samples(tmp_path):
    sf.write(str(tmp_path / "zero.wav"), np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")


def test_nan_and_inf_samples(tmp_path):
    data = np.zeros(1600, dtype=np.float32)
    data[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(tmp_path / "nan.wav")
    data[100] = np.inf
    sf.write(str(tmp_path / "inf.wav"), data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(tmp_path / "inf.wav")


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("mp3", "MP3"), ("ogg", "OGG")])
def test_truncated_file(tmp_path, ext, fmt):
    rng = np.random.default_rng(0)
    full = tmp_path / f"full.{ext}"
    sf.write(str(full), (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError) as e:
        load_audio(cut)
    assert "cut." in str(e.value)


def test_streamed_wav_with_unknown_length_is_accepted(tmp_path):
    path = tmp_path / "streamed.wav"
    write_tone(path, seconds=0.25, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    offset = data.index(b"data")
    data[offset + 4: offset + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    assert len(load_audio(path)) == 4000


def test_unreadable_file(tmp_path, monkeypatch):
    # CI runs as root, which reads any file, so simulate the permission check failing
    path = tmp_path / "locked.wav"
    write_tone(path)
    monkeypatch.setattr("xasr.audio.os.access", lambda *_: False)
    with pytest.raises(AudioError, match="permission denied"):
        load_audio(path)
