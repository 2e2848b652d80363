"""Corpus preparers on miniature corpora the tests build, and on ../shared/data where present."""

import pytest
from lhotse import load_manifest

from tests.conftest import write_tone
from xasr.data.aishell import prepare_aishell
from xasr.data.fsdd import prepare_fsdd
from xasr.data.librispeech import prepare_librispeech
from xasr.data.manifests import save_manifests
from xasr.data.tsv import prepare_tsv


def make_tsv_corpus(root, rows):
    for relative_path, _, _ in rows:
        write_tone(root / relative_path, seconds=0.3, rate=8000)
    (root / "transcripts.tsv").write_text("".join(f"{p}\t{s}\t{t}\n" for p, s, t in rows))
    return root


def test_tsv_corpus(tmp_path):
    corpus = make_tsv_corpus(tmp_path / "c", [("audio/a1.wav", "spk1", "hello  world"),
                                               ("audio/b2.wav", "spk2", "good morning")])
    splits = prepare_tsv(corpus, language="en")
    split = splits["all"]
    assert len(split) == 2 and not split.skipped
    sup = split.supervisions["a1"]
    assert (sup.text, sup.speaker, sup.language) == ("hello world", "spk1", "en")
    assert split.recordings["a1"].sampling_rate == 8000
    assert split.recordings["a1"].duration == pytest.approx(0.3)
    cut = next(iter(split.cuts))
    assert sorted(c.id for c in split.cuts) == ["a1", "b2"]  # cut ids are the utterance ids
    assert cut.resample(16000).load_audio().shape == (1, 4800)


def test_tsv_skips_and_lists_bad_audio(tmp_path):
    corpus = make_tsv_corpus(tmp_path / "c", [("a.wav", "s", "fine")])
    (corpus / "bad.wav").write_text("not audio")
    (corpus / "transcripts.tsv").write_text("a.wav\ts\tfine\nbad.wav\ts\tbroken\nmissing.wav\ts\tgone\n")
    split = prepare_tsv(corpus)["all"]
    assert len(split) == 1
    assert len(split.skipped) == 2
    assert "bad.wav: not a readable audio file" in split.skipped[0]
    assert "missing.wav: no such file" in split.skipped[1]


def test_tsv_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        prepare_tsv(tmp_path / "absent")
    (tmp_path / "c").mkdir()
    with pytest.raises(FileNotFoundError, match="transcripts.tsv"):
        prepare_tsv(tmp_path / "c")
    (tmp_path / "c" / "transcripts.tsv").write_text("a.wav\tonly two fields\n")
    with pytest.raises(ValueError, match=r"transcripts.tsv:1: expected 3"):
        prepare_tsv(tmp_path / "c")
    (tmp_path / "c" / "transcripts.tsv").write_text("\n\n")
    with pytest.raises(ValueError, match="no utterances"):
        prepare_tsv(tmp_path / "c")
    (tmp_path / "c" / "transcripts.tsv").write_text("x/a.wav\ts\tt\ny/a.wav\ts\tt\n")
    with pytest.raises(ValueError, match="repeats line 1"):
        prepare_tsv(tmp_path / "c")


def test_save_manifests_roundtrip_and_empty(tmp_path):
    corpus = make_tsv_corpus(tmp_path / "c", [("a.wav", "s", "one")])
    paths = save_manifests(prepare_tsv(corpus), tmp_path / "out", "mini")
    assert sorted(p.name for p in paths) == [
        "mini_cuts_all.jsonl.gz", "mini_recordings_all.jsonl.gz", "mini_supervisions_all.jsonl.gz"]
    assert load_manifest(tmp_path / "out" / "mini_supervisions_all.jsonl.gz")["a"].text == "one"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind
    (corpus / "transcripts.tsv").write_text("gone.wav\ts\tt\n")
    with pytest.raises(ValueError, match="no usable utterances"):
        save_manifests(prepare_tsv(corpus), tmp_path / "out2", "mini")


def test_fsdd_split_on_miniature(tmp_path):
    for name in ["3_alice_0", "3_alice_4", "3_alice_5", "7_bob_49", "readme"]:
        write_tone(tmp_path / "recordings" / f"{name}.wav", seconds=0.2, rate=8000)
    splits = prepare_fsdd(tmp_path)
    assert sorted(splits["test"].supervisions.ids) == ["3_alice_0", "3_alice_4"]
    assert sorted(splits["train"].supervisions.ids) == ["3_alice_5", "7_bob_49"]
    assert splits["train"].supervisions["7_bob_49"].text == "seven"
    assert splits["train"].supervisions["7_bob_49"].speaker == "bob"


def test_fsdd_real(shared_data):
    splits = prepare_fsdd(shared_data / "fsdd")
    assert (len(splits["train"]), len(splits["test"])) == (2250, 250)
    assert {s.speaker for s in splits["test"].supervisions} == {"george", "jackson", "lucas", "nicolas", "theo"}
    assert {s.text for s in splits["test"].supervisions} == {
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


def test_fsdd_empty(tmp_path):
    with pytest.raises(ValueError, match="no FSDD recordings"):
        prepare_fsdd(tmp_path)


def test_librispeech_on_fake_corpus(tmp_path):
    root = tmp_path / "LibriSpeech"
    for part, speaker, chapter, texts in [("dev-clean", "84", "121123", ["HELLO THERE", "GOOD DAY"]),
                                          ("test-clean", "61", "70968", ["A TEST"])]:
        folder = root / part / speaker / chapter
        lines = []
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            write_tone(folder / f"{utt}.flac", seconds=0.4, rate=16000, format="FLAC")
            lines.append(f"{utt} {text}\n")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    splits = prepare_librispeech(tmp_path, parts=["dev-clean", "test-clean"], num_jobs=1)
    assert len(splits["dev-clean"]) == 2 and len(splits["test-clean"]) == 1
    sup = splits["dev-clean"].supervisions["84-121123-0001"]
    assert (sup.text, sup.speaker) == ("GOOD DAY", "84")
    with pytest.raises(FileNotFoundError, match="train-clean-100"):
        prepare_librispeech(tmp_path, parts=["train-clean-100"])


def test_aishell_on_fake_corpus(tmp_path):
    root = tmp_path / "aishell" / "data_aishell"
    transcript = root / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True)
    rows = {"train": ("S0002", "BAC009S0002W0122", "而 对 楼市 成交 抑制 作用 最 大 的 限 购"),
            "dev": ("S0724", "BAC009S0724W0121", "甚至 出现 交易 几乎 停滞 的 情况"),
            "test": ("S0764", "BAC009S0764W0121", "甚至 出现 交易 几乎 停滞 的 情况")}
    for part, (speaker, utt, _) in rows.items():
        write_tone(root / "wav" / part / speaker / f"{utt}.wav", seconds=0.3, rate=16000)
    transcript.write_text("".join(f"{utt} {text}\n" for _, utt, text in rows.values()), encoding="utf-8")
    splits = prepare_aishell(tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 1, "dev": 1, "test": 1}
    sup = splits["train"].supervisions["BAC009S0002W0122"]
    assert sup.text == "而对楼市成交抑制作用最大的限购" and sup.speaker == "S0002"
    with pytest.raises(FileNotFoundError, match="--download"):
        prepare_aishell(tmp_path / "nowhere")
