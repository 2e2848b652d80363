"""Decoding: generation loop, budgets, loop guard, timestamps, context, inputs, bad files, the CLI."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.test_model import tiny_batch, tiny_model
from tests.test_vad import concatenate, utterances  # noqa: F401 (a fixture)
from tests.tiny import tiny_llama, tiny_tokenizer
from xasr.cli import app
from xasr.config import DecodeOptions, EncoderConfig, GenerationOptions, XASRConfig
from xasr.decode import (
    AudioInput,
    collect_inputs,
    iter_segments,
    level_crossings,
    strip_context,
    token_times,
    transcribe,
    unique_ids,
    words_with_times,
)
from xasr.generation import generate
from xasr.model import XASRModel


# ---- decoding options ---------------------------------------------------------------------------
def test_the_model_config_sets_the_default_search_and_decode_options_override_it(monkeypatch):
    import xasr.decode
    from xasr.config import DecodeOptions
    from xasr.decode import AudioInput, transcribe

    model = tiny_model(dropout=0.0).eval()
    seen = []
    original = xasr.decode.generate
    monkeypatch.setattr(xasr.decode, "generate", lambda *a, options=None, **k: seen.append(options.search) or original(
        *a, options=options, **k))
    item = AudioInput(id="a", samples=0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    model.config.generation = GenerationOptions(search="cif")
    list(transcribe(model, [item], DecodeOptions(vad="never")))
    list(transcribe(model, [item], DecodeOptions(vad="never", search="greedy")))
    assert seen == ["cif", "greedy"]
    assert XASRConfig.from_dict(model.config.to_dict()).generation.search == "cif"
    old = model.config.to_dict()
    del old["generation"]  # config.json written before the field existed
    assert XASRConfig.from_dict(old).generation.search == "greedy"


# ---- timestamps ---------------------------------------------------------------------------------
def test_level_crossings_and_token_times_from_cif_weights():
    alphas = torch.zeros(100)
    alphas[10:20] = 0.1  # token 1: frames 10-19
    alphas[60:70] = 0.1  # token 2: frames 60-69
    crossings = level_crossings(alphas, torch.tensor([0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(crossings, torch.tensor([15.0, 20.0, 65.0, 70.0]), atol=1e-4)
    times = token_times(alphas, 2, frame_rate=50.0, margin=0.1)
    assert times[0] == pytest.approx((11 / 50, 19 / 50), abs=1e-4)
    assert times[1] == pytest.approx((61 / 50, 69 / 50), abs=1e-4)
    # three written tokens for two CIF tokens: the weight is shared out in thirds
    assert len(token_times(alphas, 3, 50.0)) == 3


def test_words_are_timed_by_their_tokens():
    tokenizer = tiny_tokenizer()  # one token per byte
    ids = tokenizer("hi you", add_special_tokens=False)["input_ids"]
    times = [(float(k), k + 0.5) for k in range(len(ids))]
    text, words = words_with_times(tokenizer, ids, times, offset=10.0)
    assert text == "hi you"
    assert [(w.word, w.start, w.end) for w in words] == [("hi", 10.0, 11.5), ("you", 13.0, 15.5)]
    assert all(w.probability is None for w in words)
    _, words = words_with_times(tokenizer, ids, times, token_probs=[0.9, 0.5, 0.1, 0.2, 0.4, 0.6])
    assert [w.probability for w in words] == [0.7, 0.4]  # the mean of each word's tokens


def test_words_written_past_the_cif_count_lose_confidence(monkeypatch):
    from xasr import decode
    from xasr.decode import cif_weight_share, decode_pieces

    assert cif_weight_share(torch.full((8,), 0.5), 4) == 1.0  # as many tokens as the speech announced
    assert cif_weight_share(torch.full((8,), 0.5), 8) == 0.5  # twice as many: each has half a token's weight
    assert cif_weight_share(torch.zeros(3), 0) == 1.0
    model = tiny_model(dropout=0.0).eval()
    ids = model.llm.tokenizer("hi you", add_special_tokens=False)["input_ids"]

    def fake_generate(model, batch, **kwargs):  # 2 tokens announced by the CIF, 2 x as many written
        return [{"id": i, "token_ids": ids, "token_probs": [0.8] * len(ids),
                 "alphas": torch.full((4,), 2 / 4)} for i in batch.ids]

    monkeypatch.setattr(decode, "generate", fake_generate)
    piece = decode._Piece(input_index=0, start=0.0, samples=np.zeros(16000, np.float32))
    (segment, _), = decode_pieces(model, [piece], DecodeOptions())
    assert len(ids) == 6 and [w.probability for w in segment.words] == [round(0.8 * 2 / 6, 4)] * 2


@pytest.mark.parametrize("search", ["greedy", "cif"])
def test_token_probabilities_are_those_of_the_chosen_tokens(search):
    model = tiny_model(dropout=0.0).eval()
    results = generate(model, tiny_batch(), options=GenerationOptions(search=search, loop_repeats=1000))
    assert any(r["token_ids"] for r in results)
    for r in results:
        assert len(r["token_probs"]) == len(r["token_ids"]) and all(0 < p <= 1 for p in r["token_probs"])
    if search == "greedy":  # the LLM's probability of each written token, as one forward pass gives it
        r = results[0]
        template = model.llm.template
        with torch.no_grad():
            out = model.adapter(*model.encode(tiny_batch()))
            speech = {"<speech>": [out.embeddings[0, : out.lengths[0]]]}
            embeds, mask, _ = model.llm.build_inputs(speech, padding_side="left", template=template)
            written = model.llm.model.get_input_embeddings()(torch.tensor([r["token_ids"]]))
            logits = model.llm.model(inputs_embeds=torch.cat([embeds, written], 1)).logits[0, embeds.shape[1] - 1:-1]
        expected = logits.float().softmax(-1).gather(-1, torch.tensor(r["token_ids"])[:, None])[:, 0]
        assert torch.allclose(torch.tensor(r["token_probs"]), expected, atol=1e-4)


# ---- context and hotwords ------------------------------------------------------------------------
def test_context_enters_the_prompt_and_changes_the_output_but_not_the_transcript():
    model = tiny_model(dropout=0.0).eval()
    options = DecodeOptions(context="a talk about owls", hotwords=["Strigiformes", "tawny"])
    context = options.prompt_context()
    assert "Strigiformes, tawny" in context
    with_context = model.llm.template_with_context(context)
    assert "owls" in with_context.text and "owls" not in model.llm.template.text
    assert with_context.text.index("Strigiformes") < with_context.text.index("<speech>")
    speech = [torch.randn(3, 32)]
    with torch.no_grad():  # the LLM's first prediction depends on the context
        plain = model.llm(*model.llm.build_inputs({"<speech>": speech}, padding_side="left")[:2]).logits[0, -1]
        biased = model.llm(*model.llm.build_inputs({"<speech>": speech}, padding_side="left",
                                                   template=with_context)[:2]).logits[0, -1]
    assert not torch.allclose(plain, biased)
    # only written tokens form the transcript, never the prompt's
    for result in generate(model, tiny_batch(), context=context):
        assert "Context" not in result["text"] and "Strigiformes" not in result["text"]


def test_a_copied_context_is_removed_from_the_transcript():
    context = DecodeOptions(context="owls", hotwords=["tawny owl"]).prompt_context()
    assert strip_context("Context: owls the tawny owl calls", context) == "the tawny owl calls"
    assert strip_context("Words that may occur: tawny owl. hello", context) == "hello"
    assert strip_context("the tawny owl calls", context) == "the tawny owl calls"  # a real hotword stays


def test_context_copied_by_the_llm_does_not_leak(tmp_path, monkeypatch):
    model = tiny_model(dropout=0.0).eval()
    context = DecodeOptions(context="weather report").prompt_context()
    echo = model.llm.tokenizer(context + " sunny today", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr("xasr.generation.greedy_generate", lambda model_, embeds, *a, **k: [echo] * len(embeds))
    monkeypatch.setattr("xasr.generation.trim_loop", lambda ids, **k: list(ids))
    samples = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    [transcript] = transcribe(model, [AudioInput("a", samples=samples)],
                              DecodeOptions(context="weather report", vad="never",
                                            generation=GenerationOptions(budget_extra=100)), progress=False)
    assert transcript.text == "sunny today"
    assert [w.word for w in transcript.words] == ["sunny", "today"]


# ---- inputs and bad files ------------------------------------------------------------------------
def _noise(path, seconds=1.0, rate=16000):
    samples = 0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate)).astype(np.float32)
    sf.write(path, samples, rate)
    return path


def test_collect_inputs_expands_dirs_globs_scp_and_keeps_missing_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _noise(tmp_path / "a" / "x.wav")
    _noise(tmp_path / "b" / "x.wav")
    _noise(tmp_path / "b" / "y.flac")
    (tmp_path / "b" / "notes.txt").write_text("not audio")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {tmp_path / 'b' / 'y.flac'}\nutt2 sox x.wav -t wav - |\n")
    inputs, problems = collect_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*.flac"),
                                       str(tmp_path / "nothing*.wav"), str(tmp_path / "missing.wav"),
                                       str(tmp_path / "b" / "x.wav")], wav_scp=scp)
    assert [i.id for i in inputs] == ["a_x", "y", "missing", "b_x", "utt1"]
    assert len(problems) == 2 and "no files match" in problems[0] and "pipes" in problems[1]
    assert unique_ids([tmp_path / "p" / "s.wav", tmp_path / "q" / "s.wav"]) == ["p_s", "q_s"]


def test_bad_inputs_are_named_and_the_rest_is_decoded(tmp_path):
    good = _noise(tmp_path / "good.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("this is not audio\n" * 20)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(good.read_bytes()[:1000])  # header promises more than is there
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    unreadable = _noise(tmp_path / "unreadable.flac")
    huge = _noise(tmp_path / "huge.wav", seconds=2.0)
    inputs, _ = collect_inputs([str(p) for p in (empty, good, text, corrupt, silent, tmp_path / "gone.wav",
                                                  unreadable, huge)])
    unreadable.chmod(0)
    try:
        options = DecodeOptions(vad="auto", max_audio_hours=1.5 / 3600)
        results = {t.id: t for t in transcribe(tiny_model(dropout=0.0), inputs, options, progress=False)}
    finally:
        unreadable.chmod(0o644)
    assert list(results) == ["empty", "good", "text", "corrupt", "silent", "gone", "unreadable", "huge"]
    expected_errors = {"empty": "empty file", "text": "not a readable audio file", "corrupt": "truncated",
                       "gone": "no such file", "huge": "too long"}
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        expected_errors["unreadable"] = "permission denied"
    for name, problem in expected_errors.items():
        assert results[name].error is not None and problem in results[name].error, (name, results[name].error)
        assert str(tmp_path / name) in results[name].error
    assert results["good"].error is None and results["good"].duration == pytest.approx(1.0)
    assert results["silent"].error is None and results["silent"].text == ""
    assert "no speech" in results["silent"].notice


# ---- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model directory that loads on its own: local LLM dir, encoder trained from scratch."""
    root = tmp_path_factory.mktemp("model")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, seed=0).save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    model = tiny_model(dropout=0.0)
    model.config.encoder = EncoderConfig(kind="conformer", frozen=False,
                                         conformer={"d_model": 32, "n_layers": 1, "n_heads": 2})
    model.config.llm.source = str(root / "llm")
    model.save_pretrained(root / "model")
    return root / "model"


def test_a_model_with_a_from_scratch_encoder_round_trips(model_dir):
    first = XASRModel.load(model_dir)
    second = XASRModel.load(model_dir)
    batch = tiny_batch()
    assert torch.equal(first.encode(batch)[0], second.encode(batch)[0])
    assert "encoder" not in json.loads((model_dir / "config.json").read_text())["frozen_checksums"]


def test_cli_decodes_writes_every_format_scores_and_fails_on_bad_files(model_dir, tmp_path):
    _noise(tmp_path / "one.wav", 1.2)
    _noise(tmp_path / "two.wav", 0.7)
    (tmp_path / "bad.wav").write_text("nope")
    ref = tmp_path / "ref.tsv"
    ref.write_text("one\tspk\thello world\ntwo\tspk\tyes\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "decode", str(tmp_path / "one.wav"), str(tmp_path / "two.wav"), str(tmp_path / "bad.wav"),
        "--model", str(model_dir), "--output-dir", str(out), "--format", "txt,jsonl", "--format", "srt",
        "--format", "vtt", "--vad", "never", "--ref", str(ref), "--name", "mini", "--no-progress"])
    assert result.exit_code == 1
    assert "bad.wav" in result.output and "RTF" in result.output
    lines = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["one", "two", "bad"]
    assert "error" in lines[2] and set(lines[0]) >= {"id", "text", "words", "duration", "timing"}
    for name in ("one", "two"):
        for fmt in ("txt", "srt", "vtt"):
            assert (out / f"{name}.{fmt}").is_file()
    assert (out / "one.vtt").read_text().startswith("WEBVTT")
    assert (out / "wer-summary-mini-xasr.txt").is_file()
    assert not list(out.glob(".*partial"))


def test_cli_without_inputs_or_with_a_missing_model_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["decode", "--model", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to decode" in result.output
    _noise(tmp_path / "a.wav")
    result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no such model directory" in result.output


def test_python_api_mirrors_the_cli(model_dir, tmp_path):
    import xasr

    model = xasr.load_model(model_dir)
    samples = 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    _noise(tmp_path / "f.wav")
    transcripts = list(xasr.transcribe(model, [str(tmp_path / "f.wav"), samples,
                                               (np.stack([samples, samples], 1), 8000)], vad="never"))
    assert [t.id for t in transcripts] == ["f", "array-1", "array-2"]
    assert transcripts[2].duration == pytest.approx(1.0)  # 8000 samples at 8 kHz


def test_int8_stores_the_frozen_linear_weights_in_int8(model_dir):
    import xasr

    reference = xasr.load_model(model_dir)
    model = xasr.load_model(model_dir, int8=True)

    def int8_layers(module):
        return {name for name, m in module.named_modules()
                if isinstance(m, torch.nn.Linear) and getattr(m.weight, "qdata", m.weight).dtype == torch.int8}

    linears = {name for name, m in model.llm.model.named_modules() if isinstance(m, torch.nn.Linear)}
    output = {name for name, m in model.llm.model.named_modules() if m is model.llm.model.get_output_embeddings()}
    assert int8_layers(model.llm.model) == linears - output  # attention and MLPs; the token head's layer stays
    assert int8_layers(model.encoder) and not int8_layers(model.adapter)
    assert torch.equal(model.llm.output_embeddings.weight, reference.llm.output_embeddings.weight)
    # int8 weights with per-channel scales stay close to the float layers they replace
    batch = tiny_batch()
    with torch.no_grad():
        ours, theirs = model.encode(batch)[0], reference.encode(batch)[0]
    assert (ours - theirs).abs().max() < 0.05 * theirs.abs().max()
    assert next(xasr.transcribe(model, [np.zeros(4000, dtype=np.float32) + 0.01], vad="never")).error is None


# ---- long-form and short inputs --------------------------------------------------------------------
def test_short_inputs_are_decoded_whole_unless_digitally_silent():
    """A 0.25 s word is shorter than the VAD's minimum speech: it is still decoded (whole)."""
    t = np.arange(4000) / 16000
    word = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    pieces = list(iter_segments(AudioInput("word", samples=word), DecodeOptions()))
    assert len(pieces) == 1 and pieces[0][0] == 0.0 and len(pieces[0][1]) == len(word)
    assert list(iter_segments(AudioInput("zeros", samples=np.zeros(16000, np.float32)), DecodeOptions())) == []


def test_long_input_is_segmented_by_voice_activity_in_file_time(model_dir, utterances, tmp_path):
    """Inputs longer than max_segment_seconds are cut where the speech is; segments and words carry
    file times, in order, inside the speech they came from."""
    signal, spans = concatenate(utterances, gaps=[3.0, 2.0, 2.5])
    sf.write(tmp_path / "long.wav", signal, 16000)
    options = DecodeOptions(max_segment_seconds=5.0)  # ~14 s of audio counts as long here

    pieces = list(iter_segments(AudioInput("long", path=tmp_path / "long.wav"), options))
    assert len(pieces) == len(spans)
    for (start, samples), (speech_start, speech_end) in zip(pieces, spans):
        assert speech_start - 0.5 < start <= speech_start  # the VAD pads speech by 0.2 s
        assert speech_end <= start + len(samples) / 16000 < speech_end + 0.5

    import xasr

    transcript = next(xasr.transcribe(xasr.load_model(model_dir), [tmp_path / "long.wav"], max_segment_seconds=5.0))
    assert transcript.error is None and transcript.duration == pytest.approx(len(signal) / 16000)
    assert [round(s.start, 2) for s in transcript.segments] == [round(p[0], 2) for p in pieces]
    for segment in transcript.segments:
        assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)


def test_cli_search_cif_decodes_and_bad_search_options_are_usage_errors(model_dir, tmp_path):
    _noise(tmp_path / "a.wav", 1.0)
    result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(model_dir), "--search", "cif",
                                      "--vad", "never", "--no-progress"])
    assert result.exit_code == 0 and "\na\t" in "\n" + result.output.split("it/s]")[-1]
    for args, message in ((["--search", "fast"], "use greedy, draft, cif, fusion"),
                          (["--search", "cif", "--beam", "2"], "no --beam")):
        result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(model_dir), *args])
        assert result.exit_code == 2 and message in result.output
    result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(model_dir), "--search",
                                      "fusion", "--beam", "2", "--vad", "never", "--no-progress"])
    assert result.exit_code == 0 and "\na\t" in "\n" + result.output.split("it/s]")[-1]


def test_fusion_takes_the_models_beam_count_unless_one_is_given(model_dir, monkeypatch):
    import xasr
    from xasr import generation

    seen = []
    original = generation.fusion_generate

    def spy(*args, **kwargs):
        seen.append(args[7] if len(args) > 7 else kwargs["num_beams"])
        return original(*args, **kwargs)

    monkeypatch.setattr(generation, "fusion_generate", spy)
    model = xasr.load_model(model_dir)
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    fused = dataclasses.replace(model.config.generation, search="fusion", fusion_beams=3)
    list(xasr.transcribe(model, [audio], generation=fused, progress=False))
    list(xasr.transcribe(model, [audio], generation=fused, num_beams=1, progress=False))
    assert seen == [3, 1]


def test_load_model_holds_the_llm_in_the_asked_dtype_straight_from_its_source(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    import xasr

    bf16_trained = tmp_path / "model"
    shutil.copytree(model_dir, bf16_trained)
    config = json.loads((bf16_trained / "config.json").read_text())
    config["xasr_config"]["llm"]["dtype"] = "bfloat16"
    (bf16_trained / "config.json").write_text(json.dumps(config))
    source = AutoModelForCausalLM.from_pretrained(model_dir.parent / "llm", dtype=torch.float32).state_dict()
    for dtype in (None, "float32", "bfloat16"):
        held = xasr.load_model(bf16_trained, llm_dtype=dtype).llm.base_model.state_dict()
        expected = getattr(torch, dtype or "bfloat16")
        # float32 means the source's own weights, not the bf16 ones widened again
        assert all(torch.equal(held[name], tensor.to(expected)) for name, tensor in source.items())


@pytest.fixture(scope="module")
def image_model_dir(tmp_path_factory):
    """A tiny model with an image adapter; its vision encoder and LLM load from local dirs."""
    from transformers import Dinov2Config, Dinov2Model

    from tests.test_model import tiny_image_model

    root = tmp_path_factory.mktemp("image_model")
    model = tiny_image_model()
    model.llm.base_model.save_pretrained(root / "llm")
    model.llm.tokenizer.save_pretrained(root / "llm")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                             image_size=28, patch_size=14)).save_pretrained(root / "vision")
    model.config.encoder = EncoderConfig(kind="conformer", frozen=False,
                                         conformer={"d_model": 32, "n_layers": 1, "n_heads": 2})
    model.config.llm.source = str(root / "llm")
    model.config.vision = dataclasses.replace(model.config.vision, source=str(root / "vision"), hf_config=None)
    rebuilt = XASRModel.from_config(model.config)
    rebuilt.save_pretrained(root / "model")
    return root / "model"


def test_cli_decodes_with_a_picture_and_names_a_bad_one(image_model_dir, model_dir, tmp_path):
    from PIL import Image

    _noise(tmp_path / "a.wav", 0.8)
    Image.new("RGB", (40, 30), (0, 90, 200)).save(tmp_path / "blue.png")
    (tmp_path / "bad.png").write_text("not a picture")
    args = ["decode", str(tmp_path / "a.wav"), "--model", str(image_model_dir), "--vad", "never", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--image", str(tmp_path / "blue.png"), "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, args + ["--image", str(tmp_path / "bad.png"), "--output-dir", str(tmp_path / "2")])
    assert result.exit_code == 0, result.output  # decoded from speech alone
    assert json.loads((tmp_path / "2" / "transcripts.jsonl").read_text())["id"] == "a"
    result = CliRunner().invoke(app, args + ["--image", str(tmp_path / "none.png")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(model_dir),
                                      "--image", str(tmp_path / "blue.png"), "--output-dir", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "no image adapter" in result.output


def test_a_picture_reaches_the_llm(image_model_dir, tmp_path):
    import xasr
    from xasr.config import DecodeOptions
    from xasr.data.dataset import PictureReader

    model = xasr.load_model(image_model_dir)
    from PIL import Image

    Image.new("RGB", (40, 30), (0, 90, 200)).save(tmp_path / "blue.png")
    from xasr.data.batch import Batch, Visual

    shown = PictureReader(model.vision_encoder.preprocess_one).fill(
        Batch(ids=["a", "b"]), [Visual("image", str(tmp_path / "blue.png")), None])
    images, frames = shown.images, shown.image_frames
    assert images.shape == (2, 1, 3, 28, 28) and frames[:, 0].tolist() == [True, False]
    seen = []
    original = model.llm.build_inputs
    model.llm.build_inputs = lambda modalities, *a, **k: seen.append(modalities) or original(modalities, *a, **k)
    samples = 0.1 * np.random.default_rng(0).standard_normal(12000).astype(np.float32)
    list(transcribe(model, [samples], vad="never", image=str(tmp_path / "blue.png"), search="greedy"))
    assert DecodeOptions(image="x").image == "x"
    assert seen and seen[0]["<image>"][0].shape[0] == 3  # the Q-Former's 3 queries fill <image>


def test_cli_decodes_with_a_clip_and_takes_generation_settings(image_model_dir, model_dir, tmp_path):
    from PIL import Image

    _noise(tmp_path / "a.wav", 0.8)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (0, 40 * i, 200)).save(frames / f"{i}.png")
    args = ["decode", str(tmp_path / "a.wav"), "--model", str(image_model_dir), "--vad", "never", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--video", str(frames), "--output-dir", str(tmp_path / "o1"),
                                      "--search", "fusion", "--set", "fusion_context=image", "--set", "lm_weight=0.5"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "o1" / ".xasr-decode.json").read_text())
    assert "fusion_context" in json.dumps(settings) and str(frames) in json.dumps(settings)
    result = CliRunner().invoke(app, [*args, "--set", "lm_wieght=0.5"])
    assert result.exit_code == 2 and "lm_wieght" in result.output and "lm_weight" in result.output
    result = CliRunner().invoke(app, [*args, "--set", "fusion_context=sound"])
    assert result.exit_code == 2 and "fusion_context" in result.output
    result = CliRunner().invoke(app, [*args, "--video", str(tmp_path / "none.mp4")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = CliRunner().invoke(app, ["decode", str(tmp_path / "a.wav"), "--model", str(model_dir),
                                      "--video", str(frames), "--output-dir", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "no image adapter" in result.output and "--video" in result.output


def test_a_clip_fills_video_and_a_picture_image(image_model_dir, tmp_path):
    import xasr
    from xasr.data.batch import Batch, Visual
    from xasr.data.dataset import PictureReader
    from xasr.model import IMAGE, VIDEO

    from PIL import Image

    model = xasr.load_model(image_model_dir)
    Image.new("RGB", (40, 30), (0, 90, 200)).save(tmp_path / "blue.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 30), (90 * i, 0, 0)).save(frames / f"{i}.png")
    reader = PictureReader(model.vision_encoder.preprocess_one, num_frames=2)
    shown = [Visual("video", str(frames)), Visual("image", str(tmp_path / "blue.png"))]
    batch = reader.fill(Batch(ids=["a", "b"]), shown)
    assert batch.images.shape[:2] == (2, 2) and batch.image_frames.tolist() == [[True, True], [True, False]]
    template = type(model.llm.template)(model.llm.tokenizer, "<image> <video> <speech>")
    speech = [torch.zeros(2, model.llm.hidden_size)] * 2
    modalities = model._modalities(speech, batch, template=template)
    assert [len(e) for e in modalities[VIDEO]] == [3, 0] and [len(e) for e in modalities[IMAGE]] == [0, 3]


# ---- several processes (torchrun) ------------------------------------------------------------------
XASR = str(Path(sys.executable).parent / "xasr")  # the console script itself (a pyenv shim is a shell script)

def test_two_gloo_processes_write_what_one_process_writes(model_dir, tmp_path):
    rng = np.random.default_rng(1)
    for n, seconds in enumerate([1.4, 0.6, 1.1, 0.8, 1.9, 0.5, 1.2]):
        sf.write(tmp_path / f"in{n}.wav", 0.1 * rng.standard_normal(int(seconds * 16000)).astype(np.float32), 16000)
    (tmp_path / "bad.wav").write_text("nope")
    inputs = sorted(str(p) for p in tmp_path.glob("*.wav"))
    common = ["decode", *inputs, "--model", str(model_dir), "--format", "jsonl,txt", "--no-progress",
              "--batch-seconds", "3", "--search", "cif"]  # this random model's LLM writes nothing; its head does
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([XASR, *common, "--output-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          XASR, *common, "--output-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 1 and two.returncode != 0, two.stderr  # bad.wav fails both
    assert two.stderr.count("bad.wav: not a readable audio file") == 1  # named once, by rank 0
    assert "decoded 7 of 8 inputs on 2 processes" in two.stderr

    def outputs(folder):
        records = [json.loads(line) for line in (folder / "transcripts.jsonl").read_text().splitlines()]
        for record in records:
            record.pop("timing")
        texts = {p.name: p.read_text() for p in folder.glob("*.txt")}
        return records, texts, sorted(p.name for p in folder.iterdir())

    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
    records, texts, _ = outputs(tmp_path / "one")
    assert [r["id"] for r in records] == ["bad"] + [f"in{n}" for n in range(7)]  # input order
    assert any(text.strip() for text in texts.values())
    assert sorted(line.split("\t")[0] for line in two.stdout.splitlines()) == [f"in{n}" for n in range(7)]


def test_a_torchrun_decode_needs_an_output_dir(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["decode", str(_noise(tmp_path / "a.wav")), "--model", str(model_dir)])
    assert result.exit_code == 2 and "needs --output-dir" in result.output
