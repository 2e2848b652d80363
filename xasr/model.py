"""The composed X-LLM speech model: frozen encoder -> X2L adapter (C-Former or projector) -> frozen LLM;
optionally a frozen vision encoder -> Q-Former whose embeddings stand for `<image>` in the prompt."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xasr.adapters import CFormer, FrameStackProjector, QFormer
from xasr.adapters.alignment import boundary_loss, character_classes, character_ctc_loss, token_boundaries
from xasr.adapters.speller import token_spellings
from xasr.augment import mask_frames
from xasr.config import XASRConfig
from xasr.data.batch import Batch
from xasr.encoders import build_encoder
from xasr.encoders.vision import VisionEncoder
from xasr.io import atomic_folder
from xasr.io import short_error
from xasr.llm import LLM, with_lora
from xasr.text import SpokenTextNormalizer

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "adapter.safetensors"
LORA_DIR = "lora"


def _get(config, dotted: str):
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


IMAGE = "<image>"  # the prompt placeholders the vision adapter's embeddings fill: a picture's
VIDEO = "<video>"  # ... and a clip's
VISUAL_PLACEHOLDERS = (IMAGE, VIDEO)


class XASRModel(nn.Module):
    def __init__(self, config: XASRConfig, encoder: nn.Module, llm: LLM, vision_encoder: Optional[nn.Module] = None):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.llm = llm
        if config.encoder.frozen:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)
        if config.adapter == "cformer":
            adapter_config = dataclasses.replace(
                config.cformer, input_dim=encoder.output_dim, llm_hidden_size=llm.hidden_size,
                llm_embedding_scale=llm.embedding_scale)
            self.adapter = CFormer(adapter_config)
        elif config.adapter == "projector":
            adapter_config = dataclasses.replace(
                config.projector, input_dim=encoder.output_dim, llm_hidden_size=llm.hidden_size,
                llm_embedding_scale=llm.embedding_scale)
            self.adapter = FrameStackProjector(adapter_config)
        else:
            raise ValueError(f"unknown adapter '{config.adapter}': use 'cformer' or 'projector'")
        self.vision_encoder = self.vision_adapter = None
        if config.vision is not None:
            self.vision_encoder = vision_encoder or VisionEncoder.from_config(config.vision)
            token_norm = (float(llm.model.get_input_embeddings().weight.detach().float().norm(dim=-1).mean())
                          if config.qformer.match_token_norm else 1.0)
            self.vision_adapter = QFormer(dataclasses.replace(
                config.qformer, input_dim=self.vision_encoder.output_dim, llm_hidden_size=llm.hidden_size,
                llm_embedding_scale=llm.embedding_scale, llm_token_norm=token_norm))
        self._spoken = SpokenTextNormalizer()
        vocab_size = llm.output_embeddings.weight.shape[0]
        spellings = None
        if getattr(self.adapter, "speller", None) is not None:
            spellings = token_spellings(llm.tokenizer, vocab_size)
            self.adapter.speller.set_vocabulary(spellings)
        self.token_characters: Optional[list[list[int]]] = None  # CTC classes of each token (cformer.char_ctc)
        if getattr(self.adapter, "char_head", None) is not None:
            self.token_characters = [character_classes(text) for text in
                                     spellings or token_spellings(llm.tokenizer, vocab_size)]
        elif config.loss.char_ctc > 0 or config.loss.cif_align > 0:
            raise ValueError("loss.char_ctc and loss.cif_align need the C-Former's character head: "
                             "set cformer.char_ctc: true")
        self.generation_stats: dict = {}  # LLM forward passes and tokens the LLM wrote, for benchmarks
        # CTC over LLM tokens from the encoder frames; the extra last class is the blank
        self.ctc_head = nn.Linear(encoder.output_dim, vocab_size + 1) if config.loss.ctc > 0 else None

    @classmethod
    def from_config(cls, config: XASRConfig) -> "XASRModel":
        return cls(config, build_encoder(config.encoder), LLM.from_config(config.llm))

    def train(self, mode: bool = True) -> "XASRModel":
        super().train(mode)
        self.encoder.train(mode and not self.config.encoder.frozen)  # frozen: no dropout, fixed statistics
        self.llm.train(mode)
        if self.vision_encoder is not None:
            self.vision_encoder.train(False)
        return self

    def image_embeddings(self, batch: Batch) -> list[torch.Tensor]:
        """Per item, the Q-Former's K embeddings of its image or clip, or none ([0, hidden]) for an item
        without one (a speech-only batch, a missing picture): such items are decoded from speech alone."""
        if (batch.images is None and batch.image_features is None) or self.vision_adapter is None:
            device = self.llm.output_embeddings.weight.device
            return [torch.zeros(0, self.llm.hidden_size, device=device) for _ in batch.ids]
        if batch.image_features is not None:  # cached: [B, T, N, D]
            features = batch.image_features.float()
        else:
            pixels = batch.images  # [B, T, 3, S, S]
            features = self.vision_encoder(pixels.flatten(0, 1))  # [B * T, N, D]
            features = features.view(*pixels.shape[:2], *features.shape[1:])
        frames = batch.image_frames
        if frames is None:
            frames = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        out = self.vision_adapter(features.to(self.vision_adapter.queries.device), frames)
        return [e[:n] for e, n in zip(out.embeddings, out.lengths.tolist())]

    def _modalities(self, speech: list[torch.Tensor], batch: Batch, rows: Optional[list[int]] = None,
                    template=None) -> dict[str, list[torch.Tensor]]:
        """What the prompt's placeholders stand for, for the items `rows` (default: all): `<image>` an
        item's picture, `<video>` its clip (empty for an item shown the other kind, or nothing)."""
        modalities = {"<speech>": speech}
        placeholders = [p for p in VISUAL_PLACEHOLDERS if p in (template or self.llm.template).segments]
        if placeholders:
            visuals = self.image_embeddings(batch)
            rows = rows if rows is not None else range(len(visuals))
            kinds = [v.placeholder if v is not None else None for v in batch.visuals] if batch.visuals else None
            for placeholder in placeholders:
                modalities[placeholder] = [
                    visuals[b] if kinds is None or kinds[b] == placeholder else visuals[b][:0] for b in rows]
        return modalities

    def visual_lm_prompts(self, visuals: Sequence[torch.Tensor], prompt: Optional[str] = None) -> list[torch.Tensor]:
        """Per item, what the LLM reads before the transcript as plain text in the fusion search's
        "image" context and in `loss.image_lm`: `prompt` (default `generation.fusion_prompt`), then
        the item's picture or clip embeddings (none: the "text" context)."""
        ids = self.llm.tokenizer(prompt or self.config.generation.fusion_prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("fusion_prompt is empty: the LLM needs at least one token to start the text from")
        prefix = self.llm.embed_ids(ids)
        return [torch.cat([prefix, v.to(prefix.dtype)]) for v in visuals]

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames for the batch (computed, or taken from the cache of a frozen encoder)."""
        if batch.features is not None:
            return batch.features, batch.feature_lengths
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.encoder.frozen):
            return self.encoder(batch.waveforms, batch.waveform_lengths)

    def transcript_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The LLM's token ids of each transcript in the form the model writes (`llm.transcripts`)."""
        if self.config.llm.transcripts == "spoken":
            texts = [self._spoken(text) for text in texts]
        return [self.llm.template.transcript_ids(text) for text in texts]

    # ---- training -----------------------------------------------------------------------------
    def forward(self, batch: Batch, stage: int = 2) -> dict[str, torch.Tensor]:
        """Weighted losses for one batch; `loss` is their sum. Stage 1 skips the LLM forward pass;
        a stage 3 with only `loss.image_lm` (the picture's language model) skips the speech."""
        weights = self.config.loss
        targets = self.transcript_ids(batch.texts)
        losses: dict[str, torch.Tensor] = {}
        if stage == 3 and weights.image_lm > 0:
            visuals = self.image_embeddings(batch)
            shown = [b for b, v in enumerate(visuals) if len(v) > 0]
            if shown:  # an item shown nothing gives the image adapter nothing to learn
                prompts = self.visual_lm_prompts([visuals[b] for b in shown])
                losses["image_lm"] = weights.image_lm * self.llm.text_loss(prompts, [targets[b] for b in shown])
            if not (weights.quantity or weights.llm or weights.align_token or self.ctc_head is not None):
                losses["loss"] = sum(losses.values()) if losses else self.vision_adapter.queries.sum() * 0.0
                return losses
        features, feature_lengths = self.encode(batch)
        if self.training:
            features = mask_frames(features, feature_lengths, self.config.masking)
        target_lengths = torch.tensor([len(t) for t in targets], device=features.device)
        out = self.adapter(features, feature_lengths, target_lengths=target_lengths)
        if out.cif is not None and out.cif.quantity_loss is not None:
            losses["quantity"] = weights.quantity * out.cif.quantity_loss
        if out.char_log_probs is not None and (weights.char_ctc > 0 or weights.cif_align > 0):
            losses.update(self._alignment_losses(out, feature_lengths, targets))
        if stage == 1:
            if out.cif is None:
                raise ValueError("stage 1 trains token-synchronous embeddings: it needs the C-Former adapter")
            token_loss, accuracy = self._token_loss(out.embeddings, out.lengths, targets)
            losses["token"] = weights.token * token_loss
        else:
            speech = [e[:n] for e, n in zip(out.embeddings, out.lengths.tolist())]
            if weights.llm > 0:
                losses["llm"] = weights.llm * self.llm.transcript_loss(self._modalities(speech, batch), targets)
            if weights.align_token > 0 and out.cif is not None:  # keep the stage-1 token head alive
                token_loss, accuracy = self._token_loss(out.embeddings, out.lengths, targets)
                losses["token"] = weights.align_token * token_loss
        if self.ctc_head is not None:
            losses["ctc"] = weights.ctc * self._ctc_loss(features, feature_lengths, targets)
        losses["loss"] = sum(losses.values())
        if "token" in losses:  # a metric, not part of the loss
            losses["token_accuracy"] = accuracy
        return losses

    def _alignment_losses(self, out, feature_lengths: torch.Tensor, targets: list[list[int]]) -> dict:
        """The character CTC loss, and the CIF boundary loss against that head's forced alignment."""
        weights = self.config.loss
        characters = [[self.token_characters[i] for i in t] for t in targets]
        losses = {}
        if weights.char_ctc > 0:
            flat = [[c for token in chars for c in token] for chars in characters]
            losses["char_ctc"] = weights.char_ctc * character_ctc_loss(out.char_log_probs, feature_lengths, flat)
        if weights.cif_align > 0:
            log_probs = out.char_log_probs.detach().cpu()
            boundaries = [token_boundaries(log_probs[b], int(n), chars)
                          for b, (n, chars) in enumerate(zip(feature_lengths.tolist(), characters))]
            losses["cif_align"] = weights.cif_align * boundary_loss(out.cif.alphas, boundaries)
        return losses

    def _token_loss(self, embeddings: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]]):
        """Cross-entropy of each CIF vector, read through the LLM's output embedding, against its
        token, and the fraction of vectors whose argmax is their token (the CIF draft's accuracy).

        With `loss.token_negatives` > 0, training scores each vector against the batch's tokens and
        that many uniformly sampled others instead of the whole vocabulary (a sampled softmax; the
        accuracy is then among those candidates); evaluation always uses the whole vocabulary.
        """
        rows = torch.cat([e[: len(t)] for e, t in zip(embeddings, targets)])
        labels = torch.tensor([i for t in targets for i in t], device=rows.device)
        vocab_size = self.llm.output_embeddings.weight.shape[0]
        negatives = self.config.loss.token_negatives
        candidates = None
        if self.training and 0 < negatives < vocab_size:
            sampled = torch.randint(vocab_size, (negatives,), device=rows.device)
            candidates = torch.unique(torch.cat([labels, sampled]))  # sorted
            labels = torch.searchsorted(candidates, labels)
        logits = self._head_logits(rows, candidates)
        accuracy = (logits.detach().argmax(-1) == labels).float().mean()
        return F.cross_entropy(logits, labels), accuracy

    def _head_logits(self, embeddings: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Float32 token-head logits of C-Former vectors [..., D] for every token, or for the tokens `ids`:
        the vector (in the embedding table's space) read through the LLM's output embedding, plus the
        speller's score where the C-Former has one."""
        rows = embeddings / self.llm.embedding_scale
        head = self.llm.output_embeddings
        weight, bias = head.weight, getattr(head, "bias", None)
        if ids is not None:
            weight, bias = weight[ids], None if bias is None else bias[ids]
        logits = F.linear(rows.to(self.llm.dtype), weight, bias).float()
        return logits + self.speller(rows, ids) if self.speller is not None else logits

    def token_head(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Float32 logits over the LLM's vocabulary of C-Former vectors [..., D], read through the LLM's
        output embedding (the stage-1 token head; its argmax is the CIF draft)."""
        return self._head_logits(embeddings)

    def token_head_logits(self, embedding: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        """The token head's float32 logits of one C-Former vector [D] for the tokens `ids` only."""
        return self._head_logits(embedding, torch.tensor(list(ids), device=self.llm.output_embeddings.weight.device))

    @property
    def speller(self) -> Optional[nn.Module]:
        """The token head's spelling score (a C-Former with `spelling_dim`), or None."""
        return getattr(self.adapter, "speller", None)

    def _ctc_loss(self, features, feature_lengths, targets):
        log_probs = self.ctc_head(features).log_softmax(-1).transpose(0, 1)
        blank = self.ctc_head.out_features - 1
        flat = torch.tensor([i for t in targets for i in t], device=features.device)
        target_lengths = torch.tensor([len(t) for t in targets], device=features.device)
        return F.ctc_loss(log_probs, flat, feature_lengths, target_lengths, blank=blank, zero_infinity=True)

    # ---- model directories -----------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter (and CTC head, and an encoder trained from scratch) weights; LoRA is saved by peft."""
        state = {f"adapter.{k}": v for k, v in self.adapter.state_dict().items()}
        if not self.config.encoder.frozen:
            state.update({f"encoder.{k}": v for k, v in self.encoder.state_dict().items()})
        if self.ctc_head is not None:
            state.update({f"ctc_head.{k}": v for k, v in self.ctc_head.state_dict().items()})
        if self.vision_adapter is not None:
            state.update({f"vision_adapter.{k}": v for k, v in self.vision_adapter.state_dict().items()})
        return state

    def frozen_checksums(self) -> dict[str, str]:
        from xasr.hub import weights_checksum

        checksums = {"llm": self.llm.source_checksum}
        if self.config.encoder.frozen:
            checksums["encoder"] = self.encoder.source_checksum or weights_checksum(self.encoder)
        if self.vision_encoder is not None:
            checksums["vision"] = weights_checksum(self.vision_encoder.model)
        return checksums

    def save_pretrained(self, directory: Path | str) -> Path:
        """config.json (sources + frozen-weight checksums) + adapter safetensors (+ LoRA), atomically."""
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_folder(directory) as tmp:
            config = {"xasr_config": self.config.to_dict(), "frozen_checksums": self.frozen_checksums()}
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            save_file({k: v.detach().contiguous().cpu() for k, v in self.trainable_state_dict().items()},
                      str(tmp / WEIGHTS_FILE))
            if self.config.llm.lora_rank > 0:
                self.llm.model.save_pretrained(str(tmp / LORA_DIR))
        return directory

    @classmethod
    def load(cls, directory: Path | str, encoder: Optional[nn.Module] = None, llm: Optional[LLM] = None,
             check_frozen: bool = True, config: Optional[XASRConfig] = None,
             llm_dtype: Optional[str] = None, vision_encoder: Optional[nn.Module] = None) -> "XASRModel":
        """Load a model directory; the frozen parts come from their sources (or are passed in).

        `config` continues training a saved model under new training settings (loss weights,
        masking, LLM or encoder dtype, prompt, LoRA): its encoder, LLM source and adapter must be the saved ones.
        `llm_dtype` (float32, bfloat16, auto) loads the frozen LLM in that dtype instead of the
        config's, straight from its source (a later `LLM.set_dtype` would cast the cast weights).
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{directory}: not an xasr model directory (no {CONFIG_FILE})")
        try:
            saved = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            saved_config = XASRConfig.from_dict(saved["xasr_config"])
            saved["frozen_checksums"]
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{directory / CONFIG_FILE}: not valid JSON ({e})") from None
        except (KeyError, TypeError) as e:
            raise ValueError(f"{directory / CONFIG_FILE}: not an xasr model config (no {e} entry)") from None
        if config is None:
            config = saved_config
        else:
            kept = ("encoder", "llm.source", "adapter", "cformer", "projector")
            for name in kept + (("vision", "qformer") if saved_config.vision is not None else ()):
                ours, theirs = (_get(config, name), _get(saved_config, name))
                if name == "encoder":  # the dtype a frozen encoder runs in is a choice at load time
                    theirs = dataclasses.replace(theirs, dtype=ours.dtype)
                if name == "cformer":  # parts that start as the identity or silent: the model grows them
                    theirs = dataclasses.replace(
                        theirs, frame_layers=max(theirs.frame_layers, ours.frame_layers),
                        cross_attention=theirs.cross_attention or ours.cross_attention,
                        char_ctc=theirs.char_ctc or ours.char_ctc)
                    if theirs.spelling_dim == 0:
                        theirs = dataclasses.replace(theirs, spelling_dim=ours.spelling_dim,
                                                     spelling_buckets=ours.spelling_buckets)
                if ours != theirs:
                    raise ValueError(f"{directory} was saved with {name} = {theirs}, not {ours}: "
                                     "start a model of this configuration from scratch instead")
        lora_rank = config.llm.lora_rank
        if llm is None:
            llm = LLM.from_config(dataclasses.replace(config.llm, lora_rank=0, dtype=llm_dtype or config.llm.dtype))
        elif lora_rank > 0 and llm.config.lora_rank > 0:
            raise ValueError("pass the LLM without LoRA; the model directory's adapters are loaded onto it")
        encoder = encoder if encoder is not None else build_encoder(config.encoder)
        base_config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, lora_rank=0))
        model = cls(base_config, encoder, llm, vision_encoder)
        if lora_rank > 0:
            from peft import PeftModel

            if (directory / LORA_DIR).is_dir():
                model.llm.model = PeftModel.from_pretrained(model.llm.model, str(directory / LORA_DIR))
            else:  # LoRA starts here (e.g. stage 2 from a stage-1 C-Former)
                model.llm.model = with_lora(model.llm.model, config.llm)
            model.llm.config = config.llm
            model.config = config
        if check_frozen:
            expected, found = saved["frozen_checksums"], model.frozen_checksums()
            sources = {"encoder": config.encoder.source, "llm": config.llm.source,
                       "vision": config.vision.source if config.vision is not None else None}
            for part in expected:
                if expected[part] != found.get(part):
                    raise ValueError(
                        f"{directory}: the frozen {part} weights differ from those the model was trained with "
                        f"({sources.get(part)}); load it with the same frozen weights")
        weights = directory / WEIGHTS_FILE
        try:
            state = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types
            reason = f"{type(e).__name__}: {short_error(e, 160)}"
            raise ValueError(f"{weights}: cannot be read ({reason})") from None
        parts = [("adapter", model.adapter)] + ([("encoder", model.encoder)] if not config.encoder.frozen else [])
        parts += [("ctc_head", model.ctc_head)] if model.ctc_head is not None else []
        if model.vision_adapter is not None and saved_config.vision is not None:  # else new: starts here
            parts.append(("vision_adapter", model.vision_adapter))
        grown = [f"frame_blocks.{i}." for i in range(saved_config.cformer.frame_layers, config.cformer.frame_layers)]
        if config.cformer.cross_attention and not saved_config.cformer.cross_attention:
            grown += [f"blocks.{i}.cross_attention" for i in range(config.cformer.n_layers)]
        if config.cformer.spelling_dim > 0 and saved_config.cformer.spelling_dim == 0:
            grown.append("speller.")
        if config.cformer.char_ctc and not saved_config.cformer.char_ctc:
            grown.append("char_head.")
        for prefix, module in parts:
            try:
                loaded = module.load_state_dict(
                    {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}, strict=False)
                missing = [k for k in loaded.missing_keys if not (prefix == "adapter" and k.startswith(tuple(grown)))]
                if missing or loaded.unexpected_keys:
                    raise RuntimeError(f"keys that do not fit:\nmissing {missing}, unexpected {loaded.unexpected_keys}")
            except RuntimeError as e:
                first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e)[:160])
                raise ValueError(
                    f"{weights}: the {prefix} weights do not fit {directory / CONFIG_FILE} ({first})") from None
        return model.eval()


def average_pretrained(directories: Sequence[Path | str], output: Path | str,
                       weights: Optional[Sequence[float]] = None) -> Path:
    """Write the weighted average of saved models' trained weights as a model folder (a "model soup",
    e.g. a fine-tuned model averaged with the one it started from). The models must share the adapter's
    layout; the first one's config.json is kept. `weights` (default: equal) are normalised to sum to 1."""
    from safetensors.torch import load_file, save_file

    directories = [Path(d) for d in directories]
    if len(directories) < 2:
        raise ValueError("give at least two model folders to average")
    weights = list(weights) if weights is not None else [1.0] * len(directories)
    if len(weights) != len(directories) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"give one non-negative weight per model ({len(directories)}), not all zero")
    for directory in directories:
        if not (directory / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{directory}: not a model folder (no {WEIGHTS_FILE})")
        if (directory / LORA_DIR).exists():
            raise ValueError(f"{directory}: averaging models with a LoRA is not supported")
    states = [load_file(str(d / WEIGHTS_FILE)) for d in directories]
    first = states[0]
    for directory, state in zip(directories[1:], states[1:]):
        mismatched = sorted(k for k in first.keys() | state.keys()
                            if k not in first or k not in state or first[k].shape != state[k].shape)
        if mismatched:
            raise ValueError(f"{directory}: its weights do not match {directories[0]}'s ({mismatched[0]}, ...)")
    total = sum(weights)
    averaged = {}
    for key, value in first.items():
        if value.is_floating_point():
            mean = sum(w / total * s[key].double() for w, s in zip(weights, states))
            averaged[key] = mean.to(value.dtype).contiguous()
        else:  # integer buffers (counts, indices) are the first model's
            averaged[key] = value
    output = Path(output)
    with atomic_folder(output) as tmp:
        shutil.copy(directories[0] / CONFIG_FILE, tmp / CONFIG_FILE)
        save_file(averaged, str(tmp / WEIGHTS_FILE))
    return output
