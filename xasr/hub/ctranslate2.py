"""CTranslate2 (faster-whisper) Whisper weights: reading model.bin (split parts too) and converting
it to a transformers Whisper model."""


from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from xasr.hub.sources import PathLike, ResolvedSource, ct2_model_files

# DataType enum of CTranslate2 (include/ctranslate2/types.h); bfloat16 has no numpy dtype.
_CT2_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
               4: np.dtype("<f2"), 5: np.dtype("<u2")}


_CT2_BF16 = 5


_CT2_MAX_VERSION = 6


# CTranslate2 Activation enum -> transformers activation names
_CT2_ACTIVATIONS = {0: "relu", 1: "gelu_new", 2: "silu", 3: "gelu", 4: "quick_gelu", 5: "tanh"}


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
