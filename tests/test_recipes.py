"""The recipes (recipes/asr.sh through egs/*/asr/run.sh) on miniature corpora.

Fast: parse_options.sh, every run.sh's options, the configs, local/ scripts, and asr.sh's stage logic
(which stages run, what they run, skipping finished work, RESULTS.md) with a stand-in `xasr` that
writes small outputs at once. Slow (-m slow, about a minute each): every recipe end to end with the
real xasr on a miniature corpus, with a tiny random Whisper and a tiny random Llama saved to local
folders that a recipe config names as its sources; stage 0 runs without its pip/apt part.
"""

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import write_tone

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
EGS = REPO / "egs"
RECIPE_NAMES = ["fsdd/asr", "tts_en/asr", "librispeech/asr", "aishell/asr", "tuxpaint/masr"]


# ---- tiny models and configs --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_sources(tmp_path_factory) -> Path:
    """A tiny random Whisper (HF format) and a tiny Llama with its tokenizer, in local folders."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from tests.tiny import tiny_llama, tiny_tokenizer

    root = tmp_path_factory.mktemp("tiny_sources")
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=16, pad_token_id=0, bos_token_id=0, eos_token_id=0,
        decoder_start_token_id=1, suppress_tokens=None, begin_suppress_tokens=None)
    WhisperForConditionalGeneration(config).save_pretrained(root / "whisper")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return root


def tiny_config(sources: Path, path: Path, adapter: str = "cformer") -> Path:
    path.write_text(f"""model:
  encoder: {{kind: whisper, source: {sources / 'whisper'}, real_length: true}}
  llm: {{source: {sources / 'llm'}, system_prompt: "Be exact.", instruction: "<speech>"}}
  adapter: {adapter}
  cformer: {{d_model: 16, n_layers: 1, n_heads: 2, dropout: 0.0}}
  projector: {{stack: 4, hidden_dim: 16}}
train: {{max_duration: 5.0, warmup_steps: 1, log_every: 1, checkpoint_every: 2}}
stage1: {{num_epochs: 1, max_steps: 2, lr: 0.002}}
stage2: {{num_epochs: 1, max_steps: 2, lr: 0.002}}
""")
    return path


def run_recipe(recipe: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(["bash", str(EGS / recipe / "run.sh"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    if check:
        assert result.returncode == 0, result.stdout[-6000:]
    return result


def common_args(tmp_path: Path, config: Path) -> list[str]:
    return ["--skip-install", "true", "--asr-config", str(config), "--data-dir", str(tmp_path / "data"),
            "--exp-dir", str(tmp_path / "exp")]


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def snapshot(folder: Path) -> dict[str, int]:
    """mtimes of everything a stage made, except logs and RESULTS.md (which stage 6 rewrites)."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and "log" not in p.relative_to(folder).parts[:-1] and p.name != "RESULTS.md"}


def check_outputs(exp: Path, tag: str, test_sets: list[str], expected_utts: dict[str, int], metric: str = "WER"):
    """Models, transcripts, scoring reports and a RESULTS.md with the ESPnet and icefall tables."""
    assert (exp / tag / "align" / "model" / "config.json").is_file()
    assert (exp / tag / "align" / ".done").is_file()
    results = (exp / tag / "RESULTS.md").read_text()
    assert "|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|" in results
    assert f"### {metric}" in results
    for name in test_sets:
        decode = exp / tag / "decode" / name
        lines = [json.loads(line) for line in (decode / "transcripts.jsonl").read_text().splitlines()]
        assert len(lines) == expected_utts[name]
        for report in ["recogs", "errs", "wer-summary"]:
            assert (decode / f"{report}-{name}-{tag}.txt").is_file()
        assert (decode / f"results-{name}-{tag}.md").is_file()
        scores = json.loads((decode / f"scores-{name}-{tag}.json").read_text())
        assert scores["table_row"] in results and f"|{scores['error_rate']}|" in results
        assert f"|{name}|{expected_utts[name]}|" in results
    for word in ["git revision", "torch ", "transformers ", "lhotse ", "xasr ", "machine:", "cores", "./run.sh"]:
        assert word in results
    return results


# ---- recipes/parse_options.sh -------------------------------------------------------------------

PARSE_SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
stage=0            # first stage
stop_stage=100     # last stage
test_sets="a b"    # test sets
use_gpu=false      # a flag
_private=1
. {recipes}/parse_options.sh
echo "stage=$stage stop_stage=$stop_stage test_sets=$test_sets use_gpu=$use_gpu rest=$*"
"""


def bash(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], text=True, capture_output=True, timeout=60)


@pytest.fixture
def parse_script(tmp_path) -> Path:
    path = tmp_path / "script.sh"
    path.write_text(PARSE_SCRIPT.format(recipes=RECIPES))
    return path


def test_parse_options_sets_declared_variables(parse_script):
    result = bash(parse_script, "--stage", "3", "--stop-stage=5", "--test_sets", "x y", "--use-gpu", "true", "pos")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stage=3 stop_stage=5 test_sets=x y use_gpu=true rest=pos"


def test_parse_options_help_lists_the_options(parse_script):
    result = bash(parse_script, "--help")
    assert result.returncode == 0
    assert "--stage" in result.stdout and "first stage [0]" in result.stdout
    assert "--stop-stage" in result.stdout and "--test-sets" in result.stdout and "test sets [a b]" in result.stdout
    assert "private" not in result.stdout and "stage=" not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus", "1"], "unknown option --bogus"),
    (["--_private", "2"], "unknown option --_private"),
    (["--stage"], "option --stage needs a value"),
    (["--use-gpu", "yes"], "--use-gpu takes true or false"),
])
def test_parse_options_errors_name_the_option(parse_script, args, message):
    result = bash(parse_script, *args)
    assert result.returncode == 1
    assert message in result.stderr


def test_parse_options_forwards_unknown_options(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(f"""set -euo pipefail
corpus_dir=/x   # the corpus
parse_options_forward=true
. {RECIPES}/parse_options.sh
printf '%s|' "$corpus_dir" "${{forwarded_options[@]}}"
""")
    result = bash(script, "--stage", "2", "--corpus-dir", "/y", "--test-sets", "a b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/y|--stage|2|--test-sets|a b|"


# ---- the recipe scripts themselves ----------------------------------------------------------------

@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_run_sh_help_lists_recipe_and_stage_options(recipe):
    result = run_recipe(recipe, "--help")
    assert "Options of run.sh" in result.stdout and "Options of asr.sh" in result.stdout
    for option in ["--stage", "--stop-stage", "--skip-install", "--asr-config", "--ngpu", "--test-sets"]:
        assert option in result.stdout
    result = run_recipe(recipe, "--no-such-option", "1", check=False)
    assert result.returncode == 1 and "unknown option --no-such-option" in result.stdout


@pytest.mark.parametrize("config", sorted(EGS.glob("*/*/conf/*.yaml")), ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_recipe_configs_load(config):
    from xasr.config import load_config_file

    for stage in (1, 2, 3):
        model_config, train_config = load_config_file(config, stage)
        assert train_config.stage == stage
    assert model_config.adapter in ("cformer", "projector")


def test_cache_features_command_skips_a_finished_cache_only_and_names_a_missing_manifest(tmp_path):
    from lhotse import CutSet, MonoCut
    from typer.testing import CliRunner

    from xasr.cli import app

    cuts = CutSet.from_cuts(MonoCut(id=f"u{i}", start=0, duration=1, channel=0) for i in range(3))
    (tmp_path / "done").mkdir()
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    cuts.to_file(tmp_path / "done" / "cuts.jsonl.gz")
    result = CliRunner().invoke(app, ["cache-features", "absent.yaml", "--cuts", str(tmp_path / "cuts.jsonl.gz"),
                                      "--output-dir", str(tmp_path / "done")])
    assert result.exit_code == 0 and "already cached" in result.output  # the model is not even loaded
    cuts.subset(first=2).to_file(tmp_path / "done" / "cuts.jsonl.gz")  # a set that grew is encoded again
    result = CliRunner().invoke(app, ["cache-features", "absent.yaml", "--cuts", str(tmp_path / "cuts.jsonl.gz"),
                                      "--output-dir", str(tmp_path / "done")])
    assert result.exit_code == 1 and "absent.yaml" in result.output
    result = CliRunner().invoke(app, ["cache-features", "absent.yaml", "--cuts", str(tmp_path / "absent.jsonl.gz"),
                                      "--output-dir", str(tmp_path / "new")])
    assert result.exit_code == 1 and "absent.jsonl.gz: no such file" in result.output


def test_stage_5_without_a_model_says_which_stage_to_run(tmp_path):
    (tmp_path / "conf.yaml").write_text("model: {adapter: cformer}\n")
    result = run_recipe("fsdd/asr", "--stage", "5", "--asr-config", str(tmp_path / "conf.yaml"),
                        "--exp-dir", str(tmp_path / "exp"), check=False)
    assert result.returncode == 1
    assert "align/model is not a trained model: run stages 2-4 first" in result.stdout


RAW_TONE = (3000 * np.sin(np.arange(8000) / 5.0)).astype("<i2")  # raw 16-bit PCM, as goforward.raw


def fake_psdata(root: Path) -> Path:
    """pocketsphinx-testdata's layout: cards/ and librivox/ wavs with transcriptions, goforward.raw."""
    write_tone(root / "cards" / "001.wav", seconds=0.4)
    write_tone(root / "cards" / "002.wav", seconds=0.5)
    (root / "cards" / "cards.transcription").write_text(
        "<s> ten of clubs  </s> (001)\n<s> four queen of clubs  </s> (002)\n")
    write_tone(root / "librivox" / "sense_and_sensibility_01_austen_64kb-0880.wav", seconds=0.6)
    (root / "librivox" / "transcription").write_text(
        "<s> he was not an ill disposed young man </s> (sense_and_sensibility_01_austen_64kb-0880)\n")
    (root / "goforward.raw").write_bytes(RAW_TONE.tobytes())
    return root


def test_prepare_pocketsphinx_writes_a_tsv_corpus(tmp_path):
    psdata = fake_psdata(tmp_path / "ps")
    out = tmp_path / "corpus"
    result = bash(EGS / "tts_en" / "asr" / "local" / "prepare_pocketsphinx.sh", "--psdata-dir", str(psdata), str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in (out / "transcripts.tsv").read_text().splitlines()]
    assert rows == [
        ["audio/cards_001.wav", "psphinx_cards", "ten of clubs"],
        ["audio/cards_002.wav", "psphinx_cards", "four queen of clubs"],
        ["audio/librivox_0880.wav", "librivox_austen", "he was not an ill disposed young man"],
        ["audio/goforward.wav", "psphinx_goforward", "go forward ten meters"],
    ]
    audio, rate = sf.read(out / "audio" / "goforward.wav", dtype="int16")
    assert rate == 16000 and np.array_equal(audio, RAW_TONE)
    missing = bash(EGS / "tts_en" / "asr" / "local" / "prepare_pocketsphinx.sh", "--psdata-dir",
                   str(tmp_path / "absent"), str(out))
    assert missing.returncode == 1 and "apt-get install pocketsphinx-testdata" in missing.stderr


def test_whisper_decoder_layers_become_cformer_blocks_that_compute_the_same():
    import importlib.util

    import torch

    transformers = pytest.importorskip("transformers")
    from xasr.nn import TransformerBlock

    spec = importlib.util.spec_from_file_location(
        "whisper_decoder_init", EGS / "tts_en" / "asr" / "local" / "whisper_decoder_init.py")
    whisper_decoder_init = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(whisper_decoder_init)
    torch.manual_seed(0)
    config = transformers.WhisperConfig(d_model=16, decoder_attention_heads=2, decoder_ffn_dim=32, decoder_layers=1,
                                        encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                                        vocab_size=50, max_source_positions=20, max_target_positions=20)
    layer = transformers.models.whisper.modeling_whisper.WhisperDecoderLayer(config, layer_idx=0).eval()
    for p in layer.parameters():  # away from the default init (zero biases, unit norms) so every copy matters
        torch.nn.init.normal_(p, std=0.2)
    block = TransformerBlock(16, 2, 2, 0.0, context_dim=16).eval()
    block.load_state_dict(whisper_decoder_init.decoder_layer_state(layer))
    x, context = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    with torch.no_grad():
        ours = block(x, torch.ones(2, 5, dtype=torch.bool), context, torch.ones(2, 9, dtype=torch.bool))
        theirs = layer(x, attention_mask=torch.zeros(2, 1, 5, 5), encoder_hidden_states=context)  # not causal
    torch.testing.assert_close(ours, theirs[0] if isinstance(theirs, tuple) else theirs)


def test_swap_encoder_fits_the_input_projection_that_maps_new_frames_onto_the_old_ones():
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("swap_encoder", EGS / "tts_en" / "asr" / "local" / "swap_encoder.py")
    swap_encoder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(swap_encoder)
    torch.manual_seed(0)
    new_frames = torch.randn(2000, 12)
    weight, bias = torch.randn(6, 12), torch.randn(6)
    target = new_frames @ weight.T + bias
    fitted_weight, fitted_bias, r2 = swap_encoder.fit_projection(new_frames, target, ridge=1e-8)
    torch.testing.assert_close(fitted_weight, weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fitted_bias, bias, atol=1e-4, rtol=1e-4)
    assert r2 > 0.999
    _, _, r2_noise = swap_encoder.fit_projection(new_frames, torch.randn(2000, 6), ridge=1e-8)
    assert r2_noise < 0.05


# ---- asr.sh's stage logic with a stand-in xasr (fast) --------------------------------------------

# `python` for the recipe: `-m xasr.cli ...` and `-m torch.distributed.run ... -m xasr.cli ...` go to
# the stand-in (and are logged), `-m pip` is logged only, anything else runs in the real Python.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = xasr.cli ]; then shift 2; exec {python} {fake} "$@"; fi
if [ "$1" = -m ] && [ "$2" = torch.distributed.run ]; then
  shift 2; launcher=(torchrun)
  while [ "$1" != -m ]; do launcher+=("$1"); shift; done
  shift 2; FAKE_XASR_LAUNCHER="${{launcher[*]}}" exec {python} {fake} "$@"
fi
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip $*" >> "$FAKE_XASR_CALLS"; exit 0; fi
exec {python} "$@"
"""

FAKE_XASR = r"""
import gzip, json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_XASR_CALLS"], "a") as f:
    f.write(json.dumps([os.environ.get("FAKE_XASR_LAUNCHER", "xasr"), *args]) + "\n")

def opt(name):
    return args[args.index(name) + 1]

def write(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(item) + "\n" for item in items)

def read(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]

def reports(ref, hyp, out, name, suffix):
    from xasr.score import Reference, load_hypotheses, score, write_reports
    refs = {c["id"]: Reference(c["text"], "spk") for c in read(Path(ref))}
    write_reports(score(refs, load_hypotheses(hyp)), out, name, suffix)

command = args[0]
if command == "prepare":  # prepare fsdd CORPUS OUT
    for split, ids in {"train": ["a", "b", "c"], "test": ["d", "e"]}.items():
        for kind in ("recordings", "supervisions", "cuts"):
            write(Path(args[-1]) / f"fsdd_{kind}_{split}.jsonl.gz", [{"id": i, "text": "one two"} for i in ids])
elif command == "cache-features":
    write(Path(opt("--output-dir")) / "cuts.jsonl.gz", read(Path(opt("--cuts"))))
elif command == "train":
    exp = Path(opt("--exp-dir"))
    (exp / "model").mkdir(parents=True, exist_ok=True)
    (exp / "model" / "config.json").write_text("{}")
    (exp / "log.jsonl").write_text("".join(json.dumps({"step": s, "epoch": 0, "loss": 3.0 / s}) + "\n" for s in (1, 2)))
elif command == "decode":
    out = Path(opt("--output-dir"))
    out.mkdir(parents=True, exist_ok=True)
    hyps = [{"id": c["id"], "text": "one" if c["id"] == "d" else "one two"} for c in read(Path(opt("--manifest")))]
    (out / "transcripts.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hyps))
    if not os.environ.get("FAKE_DECODE_WITHOUT_REPORTS"):
        reports(opt("--ref"), out / "transcripts.jsonl", out, opt("--name"), opt("--suffix"))
elif command == "score":
    reports(args[1], args[2], opt("--output-dir"), opt("--name"), opt("--suffix"))
else:
    sys.exit(f"stand-in xasr: unexpected command {args}")
"""


@pytest.fixture
def stub(tmp_path):
    """Runs egs/fsdd's run.sh with the stand-in xasr; returns (run(*args, **env) -> output, calls())."""
    import sys

    (tmp_path / "fake_xasr.py").write_text(FAKE_XASR)
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable, fake=tmp_path / "fake_xasr.py"))
    python.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    calls.touch()
    (tmp_path / "conf").mkdir()
    for adapter in ("cformer", "projector"):
        (tmp_path / "conf" / f"{adapter}.yaml").write_text(f"model: {{adapter: {adapter}}}\n")

    def run(*args, expect_failure=False, **env):
        full_env = {**os.environ, "FAKE_XASR_CALLS": str(calls), "PYTHONPATH": str(REPO), **env}
        result = subprocess.run(
            ["bash", str(EGS / "fsdd" / "asr" / "run.sh"), "--python", str(python), "--fsdd-dir", "/nowhere",
             "--data-dir", str(tmp_path / "data"), "--exp-dir", str(tmp_path / "exp"),
             "--asr-config", str(tmp_path / "conf" / "cformer.yaml"), *args],
            env=full_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        assert (result.returncode != 0) == expect_failure, result.stdout[-4000:]
        return result.stdout

    def logged():
        lines = calls.read_text().splitlines()
        calls.write_text("")
        return [json.loads(line) if line.startswith("[") else line for line in lines]

    return run, logged


def test_stages_run_in_order_with_their_commands(stub, tmp_path):
    run, calls = stub
    out = run()  # with the installation step: pip runs only if xasr's requirements are missing
    exp, data = tmp_path / "exp", tmp_path / "data"
    done = [c for c in calls() if isinstance(c, list)]
    assert [c[1] for c in done] == ["prepare", "cache-features", "train", "train", "decode"]
    prepare, cache, convert, align, decode = done
    assert prepare == ["xasr", "prepare", "fsdd", "/nowhere", str(data)]
    features = Path(cache[cache.index("--output-dir") + 1])
    assert cache[cache.index("--cuts") + 1] == str(data / "fsdd_cuts_train.jsonl.gz")
    assert features.parent.parent == exp / "features" and features.name == "fsdd_train"
    assert convert[3:5] == ["--stage", "convert"]
    assert convert[convert.index("--train-cuts") + 1] == str(features / "cuts.jsonl.gz")
    assert convert[convert.index("--exp-dir") + 1] == str(exp / "cformer" / "convert")
    assert align[3:5] == ["--stage", "align"]
    assert align[align.index("--init-from") + 1] == str(exp / "cformer" / "convert" / "model")
    assert decode[decode.index("--model") + 1] == str(exp / "cformer" / "align" / "model")
    assert decode[decode.index("--manifest") + 1] == str(data / "fsdd_cuts_test.jsonl.gz")
    assert decode[decode.index("--output-dir") + 1] == str(exp / "cformer" / "decode" / "fsdd_test")
    assert decode[decode.index("--ref") + 1] == str(data / "fsdd_supervisions_test.jsonl.gz")
    options = [decode[decode.index(o) + 1] for o in ("--format", "--name", "--suffix")]
    assert options == ["jsonl", "fsdd_test", "cformer"]
    assert "Stage 4: skipped: speech-only recipe" in out

    results = (exp / "cformer" / "RESULTS.md").read_text()
    # 2 utterances of "one two", one decoded as "one": 1 deletion in 4 words
    assert "## WER\n\n|settings|fsdd_test|comment|\n|---|---|---|\n|cformer|25.0|-|\n" in results
    assert ("### WER\n\n|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|---|---|---|---|---|---|---|---|\n"
            "|fsdd_test|2|4|75.0|0.0|25.0|0.0|25.0|50.0|\n") in results
    assert "|convert|2|1|3.000|2.250|" in results  # steps, epochs, first loss, mean of the last ten
    for stage in ["0 prepare", "1 features fsdd_train", "2 train convert", "3 train align", "5 decode fsdd_test"]:
        assert f"|{stage}|`" in results
    assert "cd egs/fsdd/asr\n./run.sh --python" in results
    assert "```yaml\nmodel: {adapter: cformer}\n```" in results


def test_finished_stages_are_skipped_and_stages_5_6_run_alone(stub, tmp_path):
    run, calls = stub
    run("--skip-install", "true")
    calls()
    out = run("--skip-install", "true")
    assert calls() == []
    assert out.count("already done") == 4 and "fsdd_train: already cached" in out
    shutil.rmtree(tmp_path / "exp" / "cformer" / "decode")
    out = run("--stage", "5", "--stop-stage", "6")
    assert [c[1] for c in calls()] == ["decode"]
    assert "Stage 0" not in out and "Stage 4" not in out and (tmp_path / "exp" / "cformer" / "RESULTS.md").is_file()
    # a marker made by a different command is kept, with a warning
    out = run("--stage", "3", "--stop-stage", "3", "--train-opts", "--set align.lr=1")
    assert calls() == [] and "was made by another command" in out


def test_an_experiment_with_numbered_folders_is_renamed_and_reused(stub, tmp_path):
    run, calls = stub
    run("--skip-install", "true")
    calls()
    exp = tmp_path / "exp" / "cformer"
    for number, name in [("1", "convert"), ("2", "align")]:
        (exp / name).rename(exp / f"stage{number}")
    out = run("--skip-install", "true")
    assert f"renaming {exp}/stage1 to {exp}/convert" in out and f"renaming {exp}/stage2 to {exp}/align" in out
    assert calls() == [] and out.count("already done") == 4
    assert (exp / "align" / "model" / "config.json").is_file() and not (exp / "stage2").exists()


def test_projector_ngpu_and_no_feature_cache(stub, tmp_path):
    run, calls = stub
    out = run("--skip-install", "true", "--asr-config", str(tmp_path / "conf" / "projector.yaml"), "--ngpu", "2",
              "--torchrun-opts", "--nnodes 1", "--cache-features", "false", "--decode-opts", "--beam 3")
    assert "Stage 2: skipped: the projector adapter has no X2L conversion stage" in out
    assert "Stage 1: skipped (--cache-features false)" in out
    done = calls()
    assert [c[1] for c in done] == ["prepare", "train", "decode"]
    train = done[1]
    assert train[0] == "torchrun --nproc-per-node 2 --nnodes 1"
    assert "--init-from" not in train and train[train.index("--train-cuts") + 1] == str(
        tmp_path / "data" / "fsdd_cuts_train.jsonl.gz")
    assert done[2][-2:] == ["--beam", "3"]


def test_stage_6_scores_when_decoding_wrote_no_reports(stub, tmp_path):
    run, calls = stub
    run("--skip-install", "true", FAKE_DECODE_WITHOUT_REPORTS="1")
    done = calls()
    assert [c[1] for c in done][-2:] == ["decode", "score"]
    score = done[-1]
    assert score[2:4] == [str(tmp_path / "data" / "fsdd_supervisions_test.jsonl.gz"),
                          str(tmp_path / "exp" / "cformer" / "decode" / "fsdd_test" / "transcripts.jsonl")]
    assert "|fsdd_test|2|4|" in (tmp_path / "exp" / "cformer" / "RESULTS.md").read_text()


def test_inference_tag_and_missing_stage_inputs(stub, tmp_path):
    run, calls = stub
    out = run("--stage", "2", expect_failure=True)
    assert "cuts.jsonl.gz is missing: run stage 1 (feature caching) first" in out
    run("--skip-install", "true", "--stop-stage", "3")
    calls()
    run("--stage", "5", "--inference-tag", "beam3", "--decode-opts", "--beam 3")
    decode = calls()[0]
    assert decode[decode.index("--output-dir") + 1] == str(tmp_path / "exp" / "cformer" / "decode_beam3" / "fsdd_test")
    assert decode[decode.index("--suffix") + 1] == "cformer_beam3"
    assert "|cformer_beam3|" in (tmp_path / "exp" / "cformer" / "RESULTS.md").read_text()


def test_stage_4_from_a_given_model_skips_stages_2_3_and_trains_on_the_cached_features(stub, tmp_path):
    run, calls = stub
    start = tmp_path / "packaged"
    start.mkdir()
    (start / "config.json").write_text("{}")
    out = run("--skip-install", "true", "--multimodal-train-set", "fsdd_train", "--integrate-init", str(start))
    done = [c for c in calls() if isinstance(c, list)]
    assert [c[1] for c in done] == ["prepare", "cache-features", "train", "decode"]
    integrate, decode = done[2], done[3]
    assert integrate[3:5] == ["--stage", "integrate"]
    assert integrate[integrate.index("--init-from") + 1] == str(start)
    features = tmp_path / "exp" / "features"
    assert Path(integrate[integrate.index("--train-cuts") + 1]).parent.name == "fsdd_train"
    assert Path(integrate[integrate.index("--train-cuts") + 1]).is_relative_to(features)
    assert decode[decode.index("--model") + 1] == str(tmp_path / "exp" / "cformer" / "integrate" / "model")
    assert "Stage 2: skipped: stage 4 starts from" in out and "Stage 3: skipped: stage 4 starts from" in out
    results = (tmp_path / "exp" / "cformer" / "RESULTS.md").read_text()
    assert "|4 train integrate|`" in results and "|2 train convert|" not in results


def test_stage_3_from_a_given_model_skips_stage_2(stub, tmp_path):
    run, calls = stub
    start = tmp_path / "packaged"
    start.mkdir()
    (start / "config.json").write_text("{}")
    out = run("--skip-install", "true", "--align-init", str(start))
    done = [c for c in calls() if isinstance(c, list)]
    assert [c[1] for c in done] == ["prepare", "cache-features", "train", "decode"]
    align, decode = done[2], done[3]
    assert align[3:5] == ["--stage", "align"]
    assert align[align.index("--init-from") + 1] == str(start)
    assert decode[decode.index("--model") + 1] == str(tmp_path / "exp" / "cformer" / "align" / "model")
    assert "Stage 2: skipped: stage 3 starts from" in out
    missing = tmp_path / "nothing"
    out = run("--stage", "3", "--align-init", str(missing), expect_failure=True)
    assert f"{missing}: not a model folder (no config.json; --align-init)" in out


# ---- whole recipes with the real xasr (slow) ------------------------------------------------------

def fake_fsdd(root: Path) -> Path:
    for digit in range(3):
        for take in (0, 5, 6):  # take 0: test; 5, 6: train
            write_tone(root / "recordings" / f"{digit}_alice_{take}.wav", seconds=0.3 + 0.1 * digit, rate=8000,
                       frequency=300 + 100 * digit)
    return root


@pytest.mark.slow
def test_fsdd_recipe_runs_all_stages_skips_them_again_and_decodes_alone(tiny_sources, tmp_path):
    config = tiny_config(tiny_sources, tmp_path / "tiny.yaml")
    args = ["--fsdd-dir", str(fake_fsdd(tmp_path / "fsdd")), *common_args(tmp_path, config)]
    data, exp = tmp_path / "data", tmp_path / "exp"

    first = run_recipe("fsdd/asr", *args).stdout
    for kind in ["recordings", "supervisions", "cuts"]:
        for split in ["train", "test"]:
            assert (data / f"fsdd_{kind}_{split}.jsonl.gz").is_file()
    cached = list((exp / "features").glob("*/fsdd_train/cuts.jsonl.gz"))
    assert len(cached) == 1 and (cached[0].parent / "features.h5").is_file()
    assert all("encoder_features" in cut["custom"] for cut in read_jsonl_gz(cached[0]))
    assert (exp / "tiny" / "convert" / "model" / "config.json").is_file()
    assert "Stage 4: skipped: speech-only recipe" in first
    results = check_outputs(exp, "tiny", ["fsdd_test"], {"fsdd_test": 3})
    assert "|fsdd_test|3|3|" in results and "|settings|fsdd_test|comment|" in results
    assert "xasr train" in results and "--init-from" in results and "xasr decode" in results

    before = snapshot(exp)
    second = run_recipe("fsdd/asr", *args).stdout
    assert second.count("already done") == 4  # prepare, convert, align, decode
    assert "fsdd_train: already cached" in second
    assert snapshot(exp) == before

    shutil.rmtree(exp / "tiny" / "decode")
    (exp / "tiny" / "RESULTS.md").unlink()
    alone = run_recipe("fsdd/asr", *args, "--stage", "5", "--stop-stage", "6").stdout
    assert "Stage 0" not in alone and "Stage 3" not in alone and "Stage 5" in alone
    check_outputs(exp, "tiny", ["fsdd_test"], {"fsdd_test": 3})
    after = snapshot(exp)
    assert {k: v for k, v in after.items() if "/decode/" not in k} == {
        k: v for k, v in before.items() if "/decode/" not in k}


@pytest.mark.slow
def test_fsdd_projector_skips_x2l_stage_and_shares_features(tiny_sources, tmp_path):
    cformer = tiny_config(tiny_sources, tmp_path / "cformer.yaml")
    projector = tiny_config(tiny_sources, tmp_path / "projector.yaml", adapter="projector")
    fsdd = str(fake_fsdd(tmp_path / "fsdd"))
    run_recipe("fsdd/asr", "--fsdd-dir", fsdd, *common_args(tmp_path, cformer), "--stop-stage", "1")
    out = run_recipe("fsdd/asr", "--fsdd-dir", fsdd, *common_args(tmp_path, projector)).stdout
    assert "Stage 2: skipped: the projector adapter has no X2L conversion stage" in out
    assert "fsdd_train: already cached" in out  # same encoder: the features are shared
    assert not (tmp_path / "exp" / "projector" / "convert").exists()
    check_outputs(tmp_path / "exp", "projector", ["fsdd_test"], {"fsdd_test": 3})


@pytest.mark.slow
def test_tts_en_recipe_on_synthetic_and_fake_real_speech(tiny_sources, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    text = tmp_path / "sentences.tsv"
    text.write_text("s1\tHello there.\ns2\tGood morning to you.\ns3\tThe cat sat on the mat.\n")
    real = tmp_path / "real_en_dev"
    for name in ["a", "b"]:
        write_tone(real / "audio" / f"{name}.wav", seconds=0.5)
    (real / "transcripts.tsv").write_text("audio/a.wav\tspk\tgood morning\naudio/b.wav\tspk\tthe cat\n")
    other_text = tmp_path / "other.tsv"
    other_text.write_text("wn-1\tThe ball rolled down the hill.\n")
    args = ["--text", str(text), "--num-utts", "4", "--tts-engines", "espeak", "--nj", "1",
            "--extra-corpora", f"espeak:1:1:{other_text}",
            "--real-en-dev-dir", str(real), "--psdata-dir", str(fake_psdata(tmp_path / "ps")),
            *common_args(tmp_path, tiny_config(tiny_sources, tmp_path / "tiny.yaml"))]
    run_recipe("tts_en/asr", *args)
    assert len(read_jsonl_gz(tmp_path / "data" / "tts_cuts_train.jsonl.gz")) == 4
    extra = read_jsonl_gz(tmp_path / "data" / "extra_s1" / "tts_cuts_train.jsonl.gz")  # a corpus of its own text
    assert [c["supervisions"][0]["text"] for c in extra] == ["The ball rolled down the hill."]
    fit, valid = (read_jsonl_gz(tmp_path / "data" / f"tts_cuts_{split}.jsonl.gz") for split in ("fit", "valid"))
    assert len(fit) + len(valid) == 5 and valid  # whole sentences held out for validation
    augmented = read_jsonl_gz(tmp_path / "data" / "tts_cuts_fitaug.jsonl.gz")  # one augmented copy of each
    assert sorted(c["id"] for c in augmented) == sorted(f"{c['id']}_aug1" for c in fit)
    features = tmp_path / "exp" / "features"
    assert [len(read_jsonl_gz(f)) for f in sorted(features.glob("*/tts_fitaug/cuts.jsonl.gz"))] == [len(fit)]
    check_outputs(tmp_path / "exp", "tiny", ["real_en_dev", "pocketsphinx_test"],
                  {"real_en_dev": 2, "pocketsphinx_test": 4})
    assert run_recipe("tts_en/asr", *args).stdout.count("already done") == 5  # prepare, 2 train, 2 decode
    target = tmp_path / "packaged"
    subprocess.run([sys.executable, str(EGS / "tts_en" / "asr" / "local" / "package_model.py"),
                    "--exp-dir", str(tmp_path / "exp" / "tiny"), "--data-dir", str(tmp_path / "data"),
                    "--train-set", "tts_fit tts_fitaug", "--search", "cif", "--target", str(target)], check=True)
    card = json.loads((target / "card.json").read_text())
    assert card["training_data"]["utterances"] == 2 * len(fit) and card["search"] == "cif"
    assert json.loads((target / "config.json").read_text())["xasr_config"]["generation"]["search"] == "cif"
    from xasr.model import XASRModel

    assert XASRModel.load(target).config.generation.search == "cif"
    continued = tmp_path / "continued"  # a model trained on from the packaged one reports both runs
    subprocess.run([sys.executable, str(EGS / "tts_en" / "asr" / "local" / "package_model.py"),
                    "--exp-dir", str(tmp_path / "exp" / "tiny"), "--data-dir", str(tmp_path / "data"),
                    "--train-set", "tts_fit", "--stage", f"align again={tmp_path / 'exp' / 'tiny' / 'align'}",
                    "--base-card", str(target / "card.json"), "--target", str(continued)], check=True)
    card = json.loads((continued / "card.json").read_text())
    assert card["training_data"]["utterances"] == 3 * len(fit)
    assert list(card["stages"]) == ["convert", "align", "align again"]


def fake_librispeech(root: Path) -> Path:
    for part, speaker, chapter, texts in [("train-clean-100", "19", "198", ["HELLO THERE", "GOOD DAY"]),
                                          ("dev-clean", "84", "121123", ["A TEST"]),
                                          ("test-clean", "61", "70968", ["ONE MORE", "THE END"])]:
        folder = root / "LibriSpeech" / part / speaker / chapter
        lines = []
        for i, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{i:04d}"
            write_tone(folder / f"{utt}.flac", seconds=0.4 + 0.1 * i, format="FLAC")
            lines.append(f"{utt} {text}\n")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return root


@pytest.mark.slow
def test_librispeech_recipe_without_feature_cache(tiny_sources, tmp_path):
    args = ["--librispeech-dir", str(fake_librispeech(tmp_path / "corpus")), "--download", "false",
            "--train-parts", "train-clean-100", "--test-parts", "test-clean", "--nj", "1", "--decode-opts", "",
            *common_args(tmp_path, tiny_config(tiny_sources, tmp_path / "tiny.yaml"))]
    out = run_recipe("librispeech/asr", *args).stdout
    assert "Stage 1: skipped (--cache-features false)" in out
    assert len(read_jsonl_gz(tmp_path / "data" / "librispeech_cuts_train.jsonl.gz")) == 2
    results = check_outputs(tmp_path / "exp", "tiny", ["librispeech_test-clean"], {"librispeech_test-clean": 2})
    assert "valid loss" in results and not (tmp_path / "exp" / "features").exists()


def fake_aishell(root: Path) -> Path:
    base = root / "aishell" / "data_aishell"
    rows = [("train", "S0002", "BAC009S0002W0122", "而 对 楼市 成交"),
            ("train", "S0002", "BAC009S0002W0123", "抑制 作用"),
            ("dev", "S0724", "BAC009S0724W0121", "甚至 出现"), ("test", "S0764", "BAC009S0764W0121", "交易 几乎 停滞")]
    for part, speaker, utt, _ in rows:
        write_tone(base / "wav" / part / speaker / f"{utt}.wav", seconds=0.4)
    (base / "transcript").mkdir(parents=True)
    (base / "transcript" / "aishell_transcript_v0.8.txt").write_text(
        "".join(f"{utt} {text}\n" for _, _, utt, text in rows), encoding="utf-8")
    return root


@pytest.mark.slow
def test_aishell_recipe_scores_characters(tiny_sources, tmp_path):
    args = ["--aishell-dir", str(fake_aishell(tmp_path / "corpus")), "--download", "false", "--decode-opts", "",
            *common_args(tmp_path, tiny_config(tiny_sources, tmp_path / "tiny.yaml"))]
    run_recipe("aishell/asr", *args)
    check_outputs(tmp_path / "exp", "tiny", ["aishell_dev", "aishell_test"], {"aishell_dev": 1, "aishell_test": 1},
                  metric="CER")


def test_config_info_reads_configs_through_xasr_config(tmp_path):
    from xasr.config import encoder_tag

    def config_info(text):
        path = tmp_path / "conf.yaml"
        path.write_text(text)
        return subprocess.run([sys.executable, str(RECIPES / "recipe_utils.py"), "config-info", str(path)],
                              capture_output=True, text=True)

    result = config_info("model:\n  adapter: projector\n  encoder: {source: whisper-tiny.en, frozen: false}\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["adapter=projector", "encoder_frozen=false",
                                     "encoder_tag=" + encoder_tag({"source": "whisper-tiny.en", "frozen": False})]
    # defaults are the config module's (whisper-base), not a copy of them
    assert config_info("model: {}\n").stdout.split()[2].startswith("encoder_tag=whisper_whisper-base_")
    bad = config_info("model:\n  encoder: {sorce: whisper-tiny.en}\n")
    assert bad.returncode == 1 and "unknown EncoderConfig settings: sorce" in bad.stderr


def test_package_model_names_the_text_source_of_each_sentence_id():
    script = EGS / "tts_en" / "asr" / "local" / "package_model.py"
    spec = importlib.util.spec_from_file_location("package_model", script)
    package_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_model)
    ids = ["LJ003-0040", "wn-noun-02084071-0", "fortune-people-3-0", "ding-english-german-12-0",
           "game-freedroid-storyline-act1-dialogs-Tania-4-0", "naev-missions-neutral-cargo-1-0", "wiki-Albedo-0-1",
           "s1"]
    names = [package_model.text_source(i) for i in ids]
    assert names == ["ljspeech", "wordnet", "fortunes", "dictionary", "games", "naev", "wikipedia", "other"]
    assert set(names) - {"other"} <= set(package_model.TEXT_SOURCES)
