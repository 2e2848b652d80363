import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from xasr.audio import SAMPLE_RATE, AudioError, load_audio, to_mono_16k
from xasr.config import VADConfig
from xasr.vad import _cut_index, _read_16k, _Silero, iter_speech_segments, speech_segments

SR = SAMPLE_RATE
TEXTS = ["The quick brown fox jumps over the lazy dog",
         "Speech recognition with large language models",
         "Please call me back tomorrow morning"]
PAD = VADConfig.speech_pad_seconds


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> list[np.ndarray]:
    """espeak-ng sentences at 16 kHz, trimmed to where the voice is."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    tmp = tmp_path_factory.mktemp("espeak")
    voiced = []
    for i, text in enumerate(TEXTS):
        subprocess.run(["espeak-ng", "-w", str(tmp / f"{i}.wav"), text], check=True, capture_output=True)
        samples, rate = sf.read(str(tmp / f"{i}.wav"), dtype="float32")
        samples = to_mono_16k(samples, rate)
        loud = np.flatnonzero(np.abs(samples) > 1e-3)
        voiced.append(samples[loud[0]:loud[-1] + 1])
    return voiced


def concatenate(utterances, gaps, tail=1.0, seed=0):
    """Speech with silences of `gaps` seconds before each utterance; the spans of speech in seconds."""
    parts, spans, at = [], [], 0
    for gap, utterance in zip(gaps, utterances):
        parts += [np.zeros(int(gap * SR), np.float32), utterance]
        at += int(gap * SR)
        spans.append((at / SR, (at + len(utterance)) / SR))
        at += len(utterance)
    signal = np.concatenate(parts + [np.zeros(int(tail * SR), np.float32)])
    signal += np.random.default_rng(seed).normal(0, 1e-3, len(signal)).astype(np.float32)  # noise floor
    return signal, spans


@pytest.fixture(scope="module")
def conversation(utterances):
    return concatenate(utterances, gaps=[1.0, 1.5, 2.0])


@pytest.fixture(scope="module")
def monologue(utterances):
    """~22 s of speech whose pauses (0.25 s) are shorter than min_silence_seconds: one region."""
    return concatenate(utterances * 3, gaps=[0.25] * 9)


def times(segments):
    return [(s.start, s.end) for s in segments]


def test_segments_match_known_speech(conversation):
    signal, spans = conversation
    segments = speech_segments(signal)
    assert len(segments) == len(spans)
    for segment, (start, end) in zip(segments, spans):
        assert abs(segment.start - (start - PAD)) < 0.3 and abs(segment.end - (end + PAD)) < 0.3
        assert segment.samples.dtype == np.float32
        np.testing.assert_array_equal(segment.samples, signal[round(segment.start * SR):round(segment.end * SR)])


def test_silence_and_very_short_inputs_give_no_segments(utterances):
    noise = np.random.default_rng(1).normal(0, 1e-3, 5 * SR).astype(np.float32)
    blip = np.concatenate([np.zeros(SR, np.float32), utterances[0][SR:SR + SR // 10], np.zeros(SR, np.float32)])
    for signal in [np.zeros(5 * SR, np.float32), noise, np.zeros(0, np.float32), utterances[0][:100], blip]:
        assert speech_segments(signal) == []


def test_silent_file_gives_no_segments(tmp_path):
    sf.write(str(tmp_path / "silence.wav"), np.zeros(3 * 8000, np.float32), 8000)
    assert list(iter_speech_segments(tmp_path / "silence.wav")) == []


def test_long_region_is_split_at_pauses(monologue):
    signal, spans = monologue
    segments = speech_segments(signal, VADConfig(max_segment_seconds=5.0))
    assert len(segments) > 1
    assert all(s.duration <= 5.0 + 1e-9 for s in segments)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))  # contiguous: covers the region
    assert segments[0].start <= spans[0][0] and segments[-1].end >= spans[-1][1]
    pauses = [(end, start) for (_, end), (start, _) in zip(spans, spans[1:])]
    for cut in [s.start for s in segments[1:]]:
        assert any(lo - 0.1 <= cut <= hi + 0.1 for lo, hi in pauses), f"cut at {cut:.2f} s is not in a pause"


def test_cut_choice():
    speech = np.full(50, 0.95)
    assert _cut_index(speech, threshold=0.5) == 49  # no pause: hard split at the window end
    dips = speech.copy()
    dips[10:15] = 0.02  # a pause
    dips[30:33] = 0.4  # a shallower dip later
    assert _cut_index(dips, threshold=0.5) == 12  # mid-pause, not at the later, shallower dip
    dips[40:45] = 0.02  # an equally deep later pause wins: longer pieces
    assert _cut_index(dips, threshold=0.5) == 42


def test_blocks_give_the_same_segments_as_the_whole_file(tmp_path, monologue, conversation):
    signal = np.concatenate([conversation[0], monologue[0]])
    path = tmp_path / "long.wav"
    sf.write(str(path), signal, SR, subtype="FLOAT")
    whole = speech_segments(load_audio(path), VADConfig(max_segment_seconds=5.0, block_seconds=1000))
    blocks = list(iter_speech_segments(path, VADConfig(max_segment_seconds=5.0, block_seconds=2.3)))
    assert len(blocks) == len(whole) > len(conversation[1])
    np.testing.assert_allclose(times(blocks), times(whole), atol=1e-6)
    for a, b in zip(blocks, whole):
        np.testing.assert_allclose(a.samples, b.samples, atol=1e-6)


def test_44k_stereo_file_is_in_file_time(tmp_path, conversation):
    signal, spans = conversation
    resampled = torchaudio.functional.resample(torch.from_numpy(signal), SR, 44100).numpy()
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([resampled, 0.5 * resampled], axis=1), 44100, subtype="FLOAT")
    # the block-wise 16 kHz stream joins up to the whole-file conversion
    np.testing.assert_allclose(np.concatenate(list(_read_16k(path, 0.7))), load_audio(path), atol=1e-5)
    segments = list(iter_speech_segments(path, VADConfig(block_seconds=2.3)))
    assert len(segments) == len(spans)
    for segment, (start, end) in zip(segments, spans):
        assert abs(segment.start - (start - PAD)) < 0.3 and abs(segment.end - (end + PAD)) < 0.3
        assert len(segment.samples) == round(segment.duration * SR)


def test_unreadable_file_raises_audio_error_naming_it(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all\n")
    with pytest.raises(AudioError, match="not a readable audio file") as e:
        iter_speech_segments(path)  # at once, before any iteration
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(AudioError, match="no such file"):
        iter_speech_segments(tmp_path / "missing.flac")


def test_probabilities_match_silero_and_threads_untouched(monkeypatch, utterances):
    # importing silero_vad calls torch.set_num_threads(1): import it afresh and check it is undone
    for name in [m for m in sys.modules if m.split(".")[0] == "silero_vad"]:
        monkeypatch.delitem(sys.modules, name)
    threads = torch.get_num_threads()
    model = _Silero()
    assert torch.get_num_threads() == threads
    from silero_vad import load_silero_vad
    torch.set_num_threads(threads)

    frames = utterances[0][:12 * 512].reshape(12, 512)
    first, state = model(frames[:5], model.initial_state())
    rest, _ = model(frames[5:], state)  # state carried across calls
    reference = load_silero_vad()
    with torch.jit.optimized_execution(False):  # as xasr.vad runs it; faster here
        expected = [reference(torch.from_numpy(frame), SR).item() for frame in frames]
    # frames in batches of 5 and 7 against one at a time: the matmuls round differently (1.0e-5 seen)
    np.testing.assert_allclose(np.concatenate([first, rest]), expected, atol=5e-5)


def test_config_is_checked():
    with pytest.raises(ValueError, match="speech_pad_seconds"):
        VADConfig(speech_pad_seconds=1.0, min_silence_seconds=0.5)
    with pytest.raises(ValueError, match="max_segment_seconds"):
        VADConfig(max_segment_seconds=0.5)
