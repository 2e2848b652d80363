"""Every component's settings as a dataclass, and the recipe YAML loader; no torch, so reading
or checking a config (`xasr cache-features`, recipes, `config.json`) loads no model code.

Nested configs rebuild from `dataclasses.asdict` output with `XASRConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import yaml


# ---- encoders ------------------------------------------------------------------------------------
@dataclass
class ConformerConfig:
    n_mels: int = 80
    d_model: int = 256
    n_layers: int = 12
    n_heads: int = 4
    ff_mult: int = 4
    conv_kernel_size: int = 15
    dropout: float = 0.1


ENCODER_KINDS = ("whisper", "hf_ssl", "conformer")


@dataclass
class EncoderConfig:
    kind: str = "whisper"  # "whisper", "hf_ssl" (wav2vec2 / HuBERT / WavLM) or "conformer" (from scratch)
    source: Optional[str] = "whisper-base"  # xasr.hub name, local dir or hub id (whisper, hf_ssl)
    real_length: bool = False  # whisper: encode only the real frames instead of padding to 30 s
    min_seconds: float = 0.0  # whisper real_length: attend over at least this much (audio, then silence)
    layer: Optional[int] = None  # output of this layer instead of the last (whisper, hf_ssl)
    frozen: bool = True
    # weights of a frozen Whisper encoder: "float32", "bfloat16", or "auto" (bfloat16 where the hardware runs it
    # natively); its frames come out in float32 either way
    dtype: str = "float32"
    normalize: Optional[bool] = None  # hf_ssl waveform normalisation; None: the source's do_normalize
    # a transformers config as a dict with "model_type": random weights instead of `source` (tests)
    hf_config: Optional[dict] = None
    conformer: Union[ConformerConfig, dict] = field(default_factory=ConformerConfig)

    def __post_init__(self):
        if isinstance(self.conformer, dict):
            self.conformer = ConformerConfig(**self.conformer)
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"unknown encoder kind '{self.kind}': use one of {', '.join(ENCODER_KINDS)}")
        if self.dtype not in ("float32", "bfloat16", "auto"):
            raise ValueError(f"unknown encoder dtype '{self.dtype}': use float32, bfloat16 or auto")
        if self.dtype != "float32" and (self.kind != "whisper" or not self.frozen):
            raise ValueError("encoder.dtype other than float32 is for a frozen Whisper encoder (trained weights "
                             "stay float32; a random tiny wav2vec2 in bfloat16 drifted 23% from float32)")


@dataclass
class VisionEncoderConfig:
    source: Optional[str] = None  # xasr.hub name, local Hugging Face dir or hub id
    image_size: Optional[int] = None  # None: the source's crop size, else the model's image size
    layer: Optional[int] = None  # hidden_states[layer] instead of the last hidden state
    hf_config: Optional[dict] = None  # a transformers config dict with "model_type": random weights (tests)


# ---- adapters ------------------------------------------------------------------------------------
@dataclass
class CIFConfig:
    input_dim: int = 512
    threshold: float = 1.0  # accumulated weight that fires one token
    kernel_size: int = 3  # of the weight predictor's convolution over frames
    conv_groups: int = 1  # 1: a full convolution; input_dim: depthwise (one filter per channel, far cheaper)
    tail_threshold: float = 0.5  # without targets, a leftover of this many thresholds or more fires a last token


@dataclass
class CFormerConfig:
    input_dim: int = 512  # encoder output size (set from the encoder by XASRModel)
    d_model: int = 512
    n_layers: int = 4
    n_heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1
    frame_layers: int = 0  # transformer layers over the encoder frames before CIF (start as the identity)
    cross_attention: bool = False  # each layer after CIF also attends to the frames (starts as the identity)
    # what that cross-attention reads: "frames" (after the input projection and frame layers) or "features"
    # (the frozen encoder's own outputs, as Whisper's decoder reads them: its layers can start a C-Former)
    cross_attention_context: str = "frames"
    cif_threshold: float = 1.0
    cif_kernel_size: int = 3
    cif_conv_groups: int = 1  # 1: full convolution in the CIF weight predictor; d_model: depthwise
    cif_tail_threshold: float = 0.5
    # the token head's spelling score (xasr/adapters/speller.py): size of its vectors (0: none) and of
    # the hashed character n-gram table; it starts at zero, so a trained C-Former grows one
    spelling_dim: int = 0
    spelling_buckets: int = 16384
    # a character CTC head on the frames CIF integrates (xasr/adapters/alignment.py): its forced alignment
    # tells CIF where tokens end (loss.char_ctc trains it, loss.cif_align uses it); a trained C-Former grows one
    char_ctc: bool = False
    llm_hidden_size: int = 576  # set from the LLM by XASRModel
    llm_embedding_scale: float = 1.0  # factor the LLM's input-embedding module applies (set from the LLM)


@dataclass
class ProjectorConfig:
    input_dim: int = 512  # encoder output size (set from the encoder by XASRModel)
    stack: int = 5  # frames per output vector (Whisper's 50 Hz -> 10 Hz)
    hidden_dim: int = 2048
    llm_hidden_size: int = 576  # set from the LLM by XASRModel
    llm_embedding_scale: float = 1.0  # see xasr.adapters.cformer


@dataclass
class QFormerConfig:
    input_dim: int = 384  # patch feature size (set from the vision encoder)
    d_model: int = 384
    num_queries: int = 32  # K: LLM embeddings per image or clip
    n_layers: int = 2
    n_heads: int = 6
    ff_mult: int = 4
    dropout: float = 0.1
    max_frames: int = 16  # video: frame-index embeddings
    num_frames: int = 4  # video: frames sampled from each clip, evenly spread
    # each output embedding scaled to the LLM's mean token-embedding norm (times a learned gain): a fresh
    # projection's outputs are many times longer than the token embeddings the LLM reads beside them
    match_token_norm: bool = False
    llm_hidden_size: int = 576  # set from the LLM
    llm_embedding_scale: float = 1.0  # set from the LLM
    llm_token_norm: float = 1.0  # set from the LLM: its input embeddings' mean L2 norm

    def __post_init__(self):
        if not 1 <= self.num_frames <= self.max_frames:
            raise ValueError(f"qformer.num_frames ({self.num_frames}) must be between 1 and max_frames "
                             f"({self.max_frames})")


# ---- LLM -----------------------------------------------------------------------------------------
@dataclass
class LLMConfig:
    source: str = "smollm2-135m"  # a name from xasr.hub, a local dir or a Hugging Face id
    lora_rank: int = 0  # 0 = the LLM stays fully frozen
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    system_prompt: Optional[str] = "You are a speech recognizer. Write exactly the words spoken, nothing else."
    instruction: str = "Transcribe the speech: <speech>"
    # the transcripts the model learns to write: "written" (as the references are) or "spoken"
    # (xasr.text.SpokenTextNormalizer: the punctuation nobody says dropped, so every CIF token is heard)
    transcripts: str = "written"
    # weights of the frozen LLM: "float32", "bfloat16", or "auto" (bfloat16 where the hardware runs
    # it natively: CUDA with bf16, or a CPU with AVX512-BF16 / AMX; float32 elsewhere)
    dtype: str = "float32"

    def __post_init__(self):
        if self.transcripts not in ("written", "spoken"):
            raise ValueError(f"llm.transcripts '{self.transcripts}': use 'written' or 'spoken'")


# ---- augmentation --------------------------------------------------------------------------------
@dataclass
class AudioAugmentConfig:
    """How often each effect is drawn for an augmented copy (effects combine)."""

    speed_factors: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)  # one drawn per copy
    reverb_prob: float = 0.5  # room impulse response (lhotse's fast random RIR generator)
    noise_prob: float = 0.4  # coloured noise or hum from the noise cuts
    noise_snr: tuple[float, float] = (5.0, 25.0)  # dB, uniform
    talker_prob: float = 0.15  # another utterance of the same set underneath
    talker_snr: tuple[float, float] = (12.0, 25.0)
    telephone_prob: float = 0.1  # mu-law at 8 kHz and back
    codec_prob: float = 0.15  # one of `codecs`
    codecs: tuple[str, ...] = ("mp3", "vorbis", "opus", "gsm")
    volume: tuple[float, float] = (0.3, 1.5)  # gain, log-uniform


@dataclass
class MaskingConfig:
    time_masks: int = 0  # spans of frames set to zero per utterance (0 = off)
    max_time_fraction: float = 0.05  # each span covers at most this fraction of the utterance's frames
    max_time_width: int = 20  # ... and at most this many frames
    feature_masks: int = 0  # bands of channels set to zero per utterance (0 = off)
    max_feature_width: int = 32  # channels per band, at most

    @property
    def enabled(self) -> bool:
        return self.time_masks > 0 or self.feature_masks > 0


# ---- the model: losses, generation, composition --------------------------------------------------
@dataclass
class LossConfig:
    quantity: float = 1.0  # CIF quantity loss |sum(alpha) - N|
    token: float = 1.0  # stage 1: each CIF vector predicts its token through the LLM's output embedding
    llm: float = 1.0  # stage 2/3: LLM cross-entropy on the transcript
    ctc: float = 0.0  # optional CTC over LLM tokens on the adapter input frames
    char_ctc: float = 0.0  # CTC of the transcript's letters on the C-Former's frames (needs cformer.char_ctc)
    # |cumulative CIF weight - k| at the boundaries between tokens found by forced-aligning the letters with
    # that head: CIF learns where each token ends, not only how many there are (needs cformer.char_ctc)
    cif_align: float = 0.0
    token_negatives: int = 0  # > 0: the token loss in training is a sampled softmax over this many other tokens
    align_token: float = 0.0  # stage 2/3: the stage-1 token loss as an auxiliary term (keeps the CIF draft usable)
    # stage 3: the transcript as plain text given `generation.fusion_prompt` and the picture's Q-Former
    # embeddings (no speech): what the LLM reads as a language model in the fusion search's "image" context
    image_lm: float = 0.0


@dataclass
class GenerationOptions:
    """How much a decoder may write, and when a repeating tail counts as a loop."""

    budget_factor: float = 1.5  # tokens allowed per announced token (CIF count)
    budget_extra: int = 8
    tokens_per_second: float = 4.0  # announced tokens for adapters without a count (projector)
    loop_repeats: int = 3  # a pattern repeated this often past the announced count is a loop
    hf_generate: bool = False  # greedy search with transformers' generate instead of xasr's KV loop
    # greedy: the LLM writes (beams via num_beams); draft: the same transcript as greedy, the LLM verifying
    # the CIF draft several tokens per forward pass; cif: the token head alone, no LLM; fusion: see below
    search: str = "greedy"
    # chat guard: an LLM transcript whose words agree less than this with the CIF draft (difflib ratio)
    # has stopped transcribing; the draft replaces it. 0 turns the guard off.
    min_draft_agreement: float = 0.0
    # CIF draft: two adjacent vectors naming the same token are taken as one token fired twice
    # (a real immediate repeat, "had had", is far rarer than a double fire)
    collapse_repeats: bool = True
    # fusion: the token head's top `fusion_top_k` tokens per fired vector rescored by the LLM, weighted
    # `lm_weight`, plus `token_bonus` per written token. `fusion_context` "text": the LLM reads the transcript
    # as plain text after `fusion_prompt` (a language model; no speech); "image": the same after the item's
    # picture or clip (Q-Former embeddings; trained by loss.image_lm); "speech": after the decoding prompt
    lm_weight: float = 0.3
    token_bonus: float = 2.0
    fusion_top_k: int = 8
    fusion_beams: int = 4  # hypotheses kept when the caller names no beam size
    fusion_lm_top_k: int = 0  # > 0: the LLM's own top tokens are candidates too (a picture can supply a word)
    # > 0: a hypothesis may also write one of the LLM's top `fusion_insert_top_k` tokens without reading a
    # vector (a token the CIF did not fire for), scored lm_weight x LLM + token_bonus - fusion_insert_penalty;
    # never twice in a row
    fusion_insert_top_k: int = 0
    fusion_insert_penalty: float = 5.0
    fusion_context: str = "text"
    fusion_prompt: str = "<|endoftext|>"  # SmolLM2's (and GPT-2's) document separator

    def __post_init__(self):
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search '{self.search}': use {' or '.join(SEARCHES)}")
        if self.fusion_context not in FUSION_CONTEXTS:
            raise ValueError(f"fusion_context '{self.fusion_context}': use {', '.join(FUSION_CONTEXTS)}")


SEARCHES = ("greedy", "draft", "cif", "fusion")
FUSION_CONTEXTS = ("text", "image", "speech")
TOKEN_HEAD_SEARCHES = ("draft", "cif", "fusion")  # read the C-Former's token head: C-Former models only
SINGLE_BEAM_SEARCHES = ("draft", "cif")  # ... and one beam (fusion keeps `num_beams` hypotheses)


@dataclass
class XASRConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    adapter: str = "cformer"  # "cformer" (CIF, token-synchronous) or "projector" (frame stacking)
    cformer: CFormerConfig = field(default_factory=CFormerConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)  # on encoder outputs, in training only
    generation: GenerationOptions = field(default_factory=GenerationOptions)  # the model's decoding defaults
    vision: Optional[VisionEncoderConfig] = None  # images / clips (stage 3): the frozen vision encoder
    qformer: QFormerConfig = field(default_factory=QFormerConfig)  # ... and its adapter

    def __post_init__(self):
        if isinstance(self.vision, dict):
            self.vision = VisionEncoderConfig(**self.vision)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "XASRConfig":
        return _from_dict(cls, data)


def _from_dict(cls, data: dict):
    """Rebuild nested dataclasses from `asdict` output; unknown keys are an error naming them."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    values = {}
    for name, value in data.items():
        default = names[name].default_factory() if names[name].default_factory is not dataclasses.MISSING else None
        values[name] = _from_dict(type(default), value) if dataclasses.is_dataclass(default) else value
    return cls(**values)


# ---- training and the recipe YAML ----------------------------------------------------------------
STAGES = {1: "convert", 2: "align", 3: "integrate"}  # X-LLM's three training stages, by what each does


def training_stage(stage: int | str) -> int:
    """The number of a training stage given by name (convert, align, integrate) or number (1-3)."""
    names = {name: number for number, name in STAGES.items()}
    text = str(stage).strip().lower()
    if text in names:
        return names[text]
    if text.isdigit() and int(text) in STAGES:
        return int(text)
    raise ValueError(f"unknown training stage '{stage}': use convert (1), align (2) or integrate (3)")


@dataclass
class TrainConfig:
    """One stage's training settings.

    Batches come from one global sequence that every process draws alike (same seed); under DDP
    rank r takes every world_size-th batch. With `sync_buckets: false` and `drop_last: true` that
    sequence does not depend on the number of processes, so N processes with `accum_grad` A take
    the optimiser steps of one process with `accum_grad` N * A: the same batches and, up to float
    rounding (and dropout noise), the same gradients, weights and logged losses (tested). Keep
    `drop_last: true` with `sync_buckets: false`: lhotse 1.33's unsynced bucket choice ends an epoch
    at a random (possibly empty) bucket once no bucket holds a full batch, dropping the rest.
    """

    stage: int = 1
    num_epochs: int = 10
    max_steps: Optional[int] = None  # stop after this many optimiser steps (all epochs together)
    max_duration: float = 60.0  # seconds of audio per batch (per process)
    num_buckets: int = 10
    sync_buckets: bool = True  # DDP: the ranks' batches of one step come from the same duration bucket
    drop_last: bool = False  # drop each epoch's incomplete batches (whatever the number of processes)
    lr: float = 1e-3
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.01
    warmup_steps: int = 50
    accum_grad: int = 1
    clip_grad: float = 5.0
    seed: int = 42
    log_every: int = 10
    checkpoint_every: int = 100  # optimiser steps; also at every epoch end
    bf16: bool = True  # bfloat16 autocast on GPU
    bf16_cpu: bool = False  # bfloat16 autocast on a CPU that runs it natively (AVX512-BF16 / AMX)
    train_speech_adapter: bool = False  # stage 3: train the C-Former beside the image adapter
    cache_vision_features: bool = True  # stage 3: keep the frozen vision features (EXP_DIR/vision_features)


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 numbers: YAML 1.1 reads `1e-4` as a string, not a float."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_value(text: str):
    """A setting's value as YAML 1.2 reads it (`--set key=value`): numbers, booleans, lists, strings."""
    return _yaml_load(text)


def _yaml_load(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)


def encoder_tag(encoder: dict) -> str:
    """The folder name of an encoder's cached outputs: kind, source and a hash of the YAML `encoder:`
    section as written, so configs that share an encoder share its features."""
    config = _from_dict(EncoderConfig, encoder)
    source = "random" if config.hf_config else "conformer" if config.kind == "conformer" else config.source
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", Path(str(source).rstrip("/")).name) or "encoder"
    digest = hashlib.sha1(json.dumps(encoder, sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.kind}_{name}_{digest}"


def load_config_file(path: Path | str, stage: int | str,
                     overrides: Optional[list[str]] = None) -> tuple[XASRConfig, TrainConfig]:
    """Read a recipe YAML: `model:` (XASRConfig), `train:` (TrainConfig shared by all stages) and
    per-stage TrainConfig overrides in `stage1:` / `stage2:` / `stage3:`, or by name `convert:` /
    `align:` / `integrate:`. `stage` is a number or a name. `overrides` are `section.key=value`
    strings (values parsed as YAML), e.g. `stage1.num_epochs=2` or `convert.num_epochs=2`.
    """
    stage = training_stage(stage)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    data = _yaml_load(path.read_text()) or {}
    for number, name in STAGES.items():  # named sections are the numbered ones
        if name in data:
            if f"stage{number}" in data:
                raise ValueError(f"{path}: stage{number}: and {name}: are the same stage; keep one")
            data[f"stage{number}"] = data.pop(name)
    stage_keys = {name: f"stage{number}" for number, name in STAGES.items()}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override '{item}' is not of the form section.key=value")
        node = data
        section, *parents, leaf = key.split(".")
        for name in [stage_keys.get(section, section)] + parents:
            node = node.setdefault(name, {})
        node[leaf] = _yaml_load(value)
    unknown = set(data) - {"model", "train"} - {f"stage{n}" for n in STAGES}
    if unknown:
        raise ValueError(f"unknown config sections {', '.join(sorted(unknown))} (in {path} or the overrides)")
    model_config = XASRConfig.from_dict(data.get("model", {}))
    train_fields = {**data.get("train", {}), **data.get(f"stage{stage}", {}), "stage": stage}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(train_fields) - names
    if bad:
        raise ValueError(f"{path}: unknown training settings {', '.join(sorted(bad))}")
    return model_config, TrainConfig(**train_fields)


# ---- decoding ------------------------------------------------------------------------------------
@dataclass
class VADConfig:
    threshold: float = 0.5  # speech starts when a frame's probability reaches this
    min_speech_seconds: float = 0.25  # shorter speech regions are dropped
    min_silence_seconds: float = 0.5  # a pause this long ends a speech region
    speech_pad_seconds: float = 0.2  # added before and after each region (at most min_silence_seconds)
    max_segment_seconds: float = 20.0  # longer regions are split, at their quietest point
    block_seconds: float = 30.0  # audio read from a file at a time

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), not {self.threshold}")
        if self.min_speech_seconds < 0 or self.min_silence_seconds <= 0:
            raise ValueError("min_speech_seconds must be >= 0 and min_silence_seconds > 0")
        if not 0.0 <= self.speech_pad_seconds <= self.min_silence_seconds:
            raise ValueError("speech_pad_seconds must be between 0 and min_silence_seconds "
                             "(padding may not reach into the next segment)")
        if self.max_segment_seconds < 1.0:
            raise ValueError(f"max_segment_seconds must be at least 1, not {self.max_segment_seconds}")
        if self.block_seconds <= 0:
            raise ValueError(f"block_seconds must be > 0, not {self.block_seconds}")

    @property
    def neg_threshold(self) -> float:
        """Inside speech, only frames below this count as silence (Silero's hysteresis)."""
        return max(self.threshold - 0.15, 0.01)


@dataclass
class DecodeOptions:
    num_beams: Optional[int] = None  # None: 1 (greedy with a KV cache), or the model's fusion_beams for fusion
    search: Optional[str] = None  # greedy, draft, cif or fusion (SEARCHES); default: the model's own
    batch_seconds: float = 120.0  # padded audio per batch
    pool_seconds: float = 600.0  # audio read ahead and sorted by duration before decoding
    pool_inputs: int = 64  # ... or this many inputs: finished transcripts are written as each pool ends
    vad: str = "auto"  # auto: segment inputs longer than max_segment_seconds; always; never
    max_segment_seconds: float = 30.0
    context: Optional[str] = None  # free text given to the LLM with the speech (topic, names)
    hotwords: list[str] = field(default_factory=list)  # words the speech may contain
    max_audio_hours: float = 24.0  # longer inputs are refused rather than started
    timestamp_margin: float = 0.1  # in tokens: a word starts/ends this far inside its CIF weight
    plot_cif_dir: Optional[Path] = None  # write a PNG of each segment's CIF firing positions here
    generation: Optional[GenerationOptions] = None  # default: the model's own (config.json `generation`)
    image: Optional[str] = None  # a picture shown with every input (image models); manifests may name their own
    video: Optional[str] = None  # ... or a clip (video file, folder of frames, animated image)

    def prompt_context(self) -> Optional[str]:
        """The context text the LLM sees (None when there is none)."""
        parts = []
        if self.context:
            parts.append(f"Context: {self.context.strip()}")
        if self.hotwords:
            parts.append("Words that may occur: " + ", ".join(w.strip() for w in self.hotwords if w.strip()))
        return "\n".join(parts) or None
