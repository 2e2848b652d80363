"""The bad-input matrix of `xasr decode`, `score`, `prepare` and `train`: every case names the
file (and line) in one line, the rest carries on, nothing written is lost, exit status 1 for input
problems and 2 for usage."""

import gzip
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from tests.test_decode import _noise, model_dir  # noqa: F401 (fixture)
from xasr.cli import app
from xasr.writers import TranscriptWriter


def decode(*args):
    return CliRunner().invoke(app, ["decode", *map(str, args), "--vad", "never", "--no-progress"])


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ids_stay_unique_for_files_that_share_a_stem(model_dir, tmp_path):
    for name in ("good1.wav", "good1.flac", "good1-0.wav"):
        _noise(tmp_path / name, 0.6)
    out = tmp_path / "out"
    result = decode(tmp_path / "good1.wav", tmp_path / "good1.flac", tmp_path / "good1-0.wav",
                    "--model", model_dir, "--output-dir", out, "--format", "txt,jsonl")
    assert result.exit_code == 0, result.output
    ids = [line["id"] for line in jsonl(out / "transcripts.jsonl")]
    assert len(set(ids)) == 3 and len(list(out.glob("*.txt"))) == 3
    assert [line["path"] for line in jsonl(out / "transcripts.jsonl")] == [
        str(tmp_path / n) for n in ("good1.wav", "good1.flac", "good1-0.wav")]


def test_a_wav_scp_id_used_twice_is_reported_and_not_overwritten(model_dir, tmp_path):
    _noise(tmp_path / "a.wav", 0.6)
    _noise(tmp_path / "b.wav", 0.7)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"\ufeffu1 {tmp_path / 'a.wav'}\nu1 {tmp_path / 'b.wav'}\n")  # a BOM as well
    out = tmp_path / "out"
    result = decode("--wav-scp", scp, "--model", model_dir, "--output-dir", out)
    assert result.exit_code == 1 and f"{scp}:2: id 'u1' is used again (first at {scp}:1)" in result.output
    assert [line["id"] for line in jsonl(out / "transcripts.jsonl")] == ["u1"]
    assert jsonl(out / "transcripts.jsonl")[0]["path"] == str(tmp_path / "a.wav")


def test_a_second_run_into_the_same_folder_refuses_in_one_line(model_dir, tmp_path):
    _noise(tmp_path / "a.wav", 0.6)
    out = tmp_path / "out"
    holder = TranscriptWriter(out, ["jsonl"])
    try:
        result = decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out)
    finally:
        holder.close(complete=False)
    assert result.exit_code == 2 and "is being written by xasr decode (pid" in result.output
    assert decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out).exit_code == 0


def test_a_rerun_decodes_only_what_an_interrupted_run_left_undone(model_dir, tmp_path):
    names = ["a", "b", "c", "d"]
    for n, name in enumerate(names):
        _noise(tmp_path / f"{name}.wav", 0.5 + 0.1 * n)
    files = [tmp_path / f"{name}.wav" for name in names]
    whole = tmp_path / "whole"
    assert decode(*files, "--model", model_dir, "--output-dir", whole).exit_code == 0
    expected = (whole / "transcripts.jsonl").read_text().splitlines()
    # an interrupted run: two finished lines and half a line in the .partial, no transcripts.jsonl
    out = tmp_path / "out"
    out.mkdir()
    (out / ".transcripts.jsonl.partial").write_text(expected[2] + "\n" + expected[0] + "\n" + expected[1][:20])
    result = decode(*files, "--model", model_dir, "--output-dir", out)
    assert result.exit_code == 0 and "resuming: 2 of 4 inputs are already transcribed" in result.output
    assert "decoded 2 of 2 inputs" in result.output
    lines = (out / "transcripts.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "timing"} for line in lines]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "timing"} for line in expected]
    again = decode(*files, "--model", model_dir, "--output-dir", out, "--overwrite")
    assert again.exit_code == 0 and "decoded 4 of 4 inputs" in again.output


def test_a_folder_made_with_other_settings_is_not_resumed(model_dir, tmp_path):
    _noise(tmp_path / "a.wav", 0.6)
    out = tmp_path / "out"
    assert decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out, "--search", "cif").exit_code == 0
    other = decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out, "--search", "greedy")
    assert other.exit_code == 2
    assert "holds 1 transcript(s) made with other settings (search: cif -> greedy)" in other.output
    assert decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out, "--search", "cif").exit_code == 0
    copy = tmp_path / "copy"  # the same model elsewhere is the same model; changed weights are not
    shutil.copytree(model_dir, copy)
    assert decode(tmp_path / "a.wav", "--model", copy, "--output-dir", out, "--search", "cif").exit_code == 0
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("}", ' }', 1))
    changed = decode(tmp_path / "a.wav", "--model", copy, "--output-dir", out, "--search", "cif")
    assert changed.exit_code == 2 and f"(model: {copy} -> {copy})" in changed.output
    overwrite = decode(tmp_path / "a.wav", "--model", model_dir, "--output-dir", out, "--search", "greedy",
                       "--overwrite")
    assert overwrite.exit_code == 0 and "decoded 1 of 1 inputs" in overwrite.output


def test_a_failed_output_write_is_named_and_the_rest_is_written(model_dir, tmp_path):
    long_name = "x" * 240
    for name in ("a", "b", long_name):
        _noise(tmp_path / f"{name}.wav", 0.6)
    out = tmp_path / "out"
    (out / "a.txt").mkdir(parents=True)  # a directory where a.txt should go
    result = decode(tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / f"{long_name}.wav",
                    "--model", model_dir, "--output-dir", out, "--format", "txt,jsonl")
    assert result.exit_code == 1 and f"{out / 'a.txt'}: cannot be written" in result.output
    assert (out / "b.txt").is_file() and (out / f"{long_name}.txt").is_file()  # short temporary names
    assert len(jsonl(out / "transcripts.jsonl")) == 3


@pytest.mark.parametrize("option", [["--beam", "0"], ["--beam", "-1"], ["--batch-seconds", "-1"],
                                    ["--max-segment-seconds", "0"], ["--device", "foo"],
                                    ["--device", "cuda:99"], ["--llm-dtype", "fp8"], ["--max-audio-hours", "0"]])
def test_bad_options_are_usage_errors_before_any_model_loads(tmp_path, option):
    _noise(tmp_path / "a.wav", 0.5)
    result = decode(tmp_path / "a.wav", "--model", tmp_path / "no-model", *option)
    assert result.exit_code == 2, result.output
    assert option[0] in result.output and "no-model" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def _manifests(tmp_path):
    (tmp_path / "empty.jsonl.gz").write_bytes(b"")
    from lhotse import AudioSource, Recording

    cut = Recording(id="r", sources=[AudioSource("file", [0], "/x.wav")], sampling_rate=16000,
                    num_samples=16000, duration=1.0).to_cut()
    full = gzip.compress("".join(json.dumps(cut.with_id(f"c{i}").to_dict()) + "\n" for i in range(3000)).encode())
    (tmp_path / "truncated.jsonl.gz").write_bytes(full[: len(full) // 2])
    (tmp_path / "random.jsonl").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "start": 0, "duration": 1}\n{"id": \n')
    (tmp_path / "notcuts.jsonl").write_text('{"hello": "world"}\n')
    return {"empty.jsonl.gz": "no cuts", "truncated.jsonl.gz": "truncated or corrupt",
            "random.jsonl": ":1: not JSON", "broken.jsonl": ":1: not a lhotse cut",
            "notcuts.jsonl": ":1: not a lhotse cut"}


def test_unreadable_manifests_are_named_in_one_line(model_dir, tmp_path):
    for name, problem in _manifests(tmp_path).items():
        result = decode("--manifest", tmp_path / name, "--model", model_dir)
        assert result.exit_code == 1, (name, result.output)
        assert str(tmp_path / name) in result.output and problem in result.output, (name, result.output)
        assert "Traceback" not in result.output


def test_broken_model_directories_are_named_in_one_line(model_dir, tmp_path):
    _noise(tmp_path / "a.wav", 0.5)
    cases = {}
    for case in ("truncated", "random", "empty_config", "shapes"):
        broken = tmp_path / case
        shutil.copytree(model_dir, broken)
        cases[case] = broken
    weights = (model_dir / "adapter.safetensors").read_bytes()
    (cases["truncated"] / "adapter.safetensors").write_bytes(weights[: len(weights) // 2])
    (cases["random"] / "adapter.safetensors").write_bytes(bytes(range(256)) * 16)
    (cases["empty_config"] / "config.json").write_text("{}")
    config = json.loads((model_dir / "config.json").read_text())
    config["xasr_config"]["cformer"]["d_model"] = 48
    (cases["shapes"] / "config.json").write_text(json.dumps(config))
    problems = {"truncated": "adapter.safetensors: cannot be read", "random": "adapter.safetensors: cannot be read",
                "empty_config": "config.json: not an xasr model config", "shapes": "weights do not fit"}
    for case, problem in problems.items():
        result = decode(tmp_path / "a.wav", "--model", cases[case])
        assert result.exit_code == 1 and problem in result.output, (case, result.output)
        assert "Traceback" not in result.output


def test_non_utf8_wav_scp_names_the_file_and_line(model_dir, tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_bytes(b"u1 /tmp/a.wav\nu2 /tmp/\xff\xfe.wav\n")
    result = decode("--wav-scp", scp, "--model", model_dir)
    assert result.exit_code == 1 and f"{scp}:2: not UTF-8" in result.output


def test_a_byte_order_mark_keeps_the_first_row_of_a_tsv(tmp_path):
    corpus = tmp_path / "corpus"
    for name in ("u1", "u2"):
        _noise(corpus / f"{name}.wav" if corpus.mkdir(exist_ok=True) is None else None, 0.5)
    (corpus / "transcripts.tsv").write_text("\ufeffu1.wav\tspk\thello world\nu2.wav\tspk\tyes\n")
    result = CliRunner().invoke(app, ["prepare", "tsv", str(corpus), str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("\ufeffu1 hello world\nu2 yes\n")
    result = CliRunner().invoke(app, ["score", str(corpus / "transcripts.tsv"), str(hyp)])
    assert result.exit_code == 0 and "%WER 0.00 [0 / 3" in result.output, result.output


def test_the_same_training_command_gives_the_same_losses(tmp_path):
    from tests.test_train import tiny_cuts
    from tests.tiny import tiny_llama, tiny_tokenizer

    (tmp_path / "audio").mkdir()
    tiny_cuts(tmp_path / "audio").to_file(tmp_path / "cuts.jsonl.gz")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    config = {"model": {"encoder": {"kind": "conformer", "frozen": False,
                                    "conformer": {"d_model": 32, "n_layers": 1, "n_heads": 2}},
                        "llm": {"source": str(tmp_path / "llm")},
                        "cformer": {"d_model": 32, "n_layers": 1, "n_heads": 2}},
              "train": {"num_epochs": 1, "max_duration": 1.5, "log_every": 1, "seed": 3}}
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(config))
    losses = []
    for run in range(2):
        exp = tmp_path / f"exp{run}"
        subprocess.run([sys.executable, "-m", "xasr.cli", "train", str(tmp_path / "conf.yaml"), "--stage", "convert",
                        "--train-cuts", str(tmp_path / "cuts.jsonl.gz"), "--exp-dir", str(exp)],
                       check=True, capture_output=True)
        losses.append([json.loads(line)["loss"] for line in (exp / "log.jsonl").read_text().splitlines()])
    assert len(losses[0]) > 2 and losses[0] == pytest.approx(losses[1], rel=1e-6)
