import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import write_tone
from xasr.cli import app

runner = CliRunner()


def all_command_paths(command, path=()):
    yield path
    if hasattr(command, "commands"):  # a group
        for name, sub in command.commands.items():
            yield from all_command_paths(sub, path + (name,))


@pytest.mark.parametrize("path", list(all_command_paths(typer.main.get_command(app))))
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_info_lists_versions_and_device():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for word in ["torch", "lhotse", "jiwer", "cpu threads", "espeak-ng", "model sources", "whisper-tiny.en",
                 "packaged models"]:
        assert word in result.output
    # the values are what this machine has, not fixed words
    import shutil
    from importlib.metadata import version

    lines = dict(line.strip().split(None, 1) for line in result.output.splitlines()
                 if line.startswith("  ") and len(line.split()) > 1)
    assert lines["torch"] == version("torch")
    assert lines["espeak-ng"] == (shutil.which("espeak-ng") or "not found")
    from xasr.nn import cpu_has_native_bf16

    bf16 = next(line for line in result.output.splitlines() if "cpu bfloat16" in line)
    assert ("not native" not in bf16) == cpu_has_native_bf16()


def test_prepare_fsdd_writes_manifests(tmp_path):
    for name in ["1_ann_0", "2_ann_7"]:
        write_tone(tmp_path / "fsdd" / f"{name}.wav", seconds=0.2, rate=8000)
    result = runner.invoke(app, ["prepare", "fsdd", str(tmp_path / "fsdd"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "fsdd/test: 1 utterances" in result.output
    for kind in ["recordings", "supervisions", "cuts"]:
        for split in ["train", "test"]:
            assert (tmp_path / "out" / f"fsdd_{kind}_{split}.jsonl.gz").is_file()


def test_prepare_tsv_reports_bad_files_and_fails(tmp_path):
    write_tone(tmp_path / "c" / "ok.wav")
    (tmp_path / "c" / "bad.wav").write_bytes(b"\x00" * 100)
    (tmp_path / "c" / "transcripts.tsv").write_text("ok.wav\ts\tfine\nbad.wav\ts\tbroken\n")
    result = runner.invoke(app, ["prepare", "tsv", str(tmp_path / "c"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "bad.wav: not a readable audio file" in result.output
    # the good utterance is still written
    assert (tmp_path / "out" / "c_cuts_all.jsonl.gz").is_file()


def test_prepare_missing_corpus_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["prepare", "fsdd", str(tmp_path / "absent"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().endswith("absent: no such directory")


def test_prepare_fsdd_then_score_self_and_corrupted(shared_data, tmp_path):
    import gzip
    import json

    out = tmp_path / "fsdd"
    assert runner.invoke(app, ["prepare", "fsdd", str(shared_data / "fsdd"), str(out)]).exit_code == 0
    ref = out / "fsdd_supervisions_test.jsonl.gz"
    sups = sorted((json.loads(line) for line in gzip.open(ref, "rt")), key=lambda s: s["id"])
    (tmp_path / "self.jsonl").write_text("".join(json.dumps({"id": s["id"], "text": s["text"]}) + "\n" for s in sups))
    result = runner.invoke(app, ["score", str(ref), str(tmp_path / "self.jsonl")])
    assert result.exit_code == 0 and "%WER 0.00 [0 / 250, 0 ins, 0 del, 0 sub]" in result.output
    lines = []
    for i, s in enumerate(sups):
        if i < 7:
            continue  # 7 missing hypotheses -> 7 deletions
        text = {"zero": "one"}.get(s["text"], "zero") if i < 18 else s["text"]  # 11 substitutions
        lines.append(f"{s['id']} {text}{' again' if 18 <= i < 21 else ''}")  # 3 insertions
    (tmp_path / "text").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["score", str(ref), str(tmp_path / "text"), "--output-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "%WER 8.40 [21 / 250, 3 ins, 7 del, 11 sub]" in result.output
    assert (tmp_path / "r" / "errs-fsdd_supervisions_test-xasr.txt").read_text().startswith(
        "%WER = 8.40\nErrors: 3 insertions, 7 deletions, 11 substitutions, over 250 reference words (232 correct)\n")


def test_decode_defaults_are_the_python_apis():
    import dataclasses

    import typer

    from xasr.config import DecodeOptions

    decode = typer.main.get_command(app).commands["decode"]
    defaults = {param.name: param.default for param in decode.params}
    names = {"beam": "num_beams", "batch_seconds": "batch_seconds", "vad": "vad",
             "max_segment_seconds": "max_segment_seconds", "max_audio_hours": "max_audio_hours"}
    api = {f.name: f.default for f in dataclasses.fields(DecodeOptions)}
    assert {option: defaults[option] for option in names} == {option: api[field] for option, field in names.items()}
