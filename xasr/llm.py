"""The frozen LLM: loading (HF id, dir or packaged GGUF), optional LoRA, prompts with `<speech>`.

One `PromptTemplate` builds the same token layout for training and decoding:

    [chat prefix ... instruction] <speech embeddings> [... chat suffix] transcript <eos>

and the loss covers only the transcript tokens and the end-of-transcript token.
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Sequence, Union

import torch
from torch import nn

from xasr.config import LLMConfig
from xasr.nn import resolve_dtype

log = logging.getLogger(__name__)

PLACEHOLDERS = ("<speech>", "<image>", "<video>")
IGNORE_INDEX = -100


class PromptTemplate:
    """Token ids around modality placeholders, rendered through the model's chat template."""

    def __init__(self, tokenizer, instruction: str, system_prompt: Optional[str] = None,
                 context: Optional[str] = None):
        if not any(p in instruction for p in PLACEHOLDERS):
            raise ValueError(f"the instruction must contain a placeholder such as <speech>: {instruction!r}")
        self.tokenizer = tokenizer
        self.context = context
        # decoding-time context (topic, names, hotwords) joins the system message, so the instruction
        # and speech keep the layout the adapter was trained with
        if context:
            if system_prompt:
                system_prompt = f"{system_prompt}\n{context}"
            else:
                instruction = f"{context}\n{instruction}"
        messages = [{"role": "user", "content": instruction}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # base models (e.g. GPT-2): plain text, BOS first where the model has one
            text = (tokenizer.bos_token or "") + "\n".join(m["content"] for m in messages) + "\n"
        self.text = text
        self.segments: list[Union[str, list[int]]] = []
        for piece in re.split("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")", text):
            if piece in PLACEHOLDERS:
                self.segments.append(piece)
            elif piece:
                self.segments.append(tokenizer(piece, add_special_tokens=False)["input_ids"])
        # the text before the first placeholder: the same for every utterance (see LLM.prefix_cache)
        self.prefix_ids: list[int] = self.segments[0] if self.segments and not isinstance(self.segments[0], str) else []
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-sequence token to end transcripts with")
        self.eos_token_id: int = tokenizer.eos_token_id

    def transcript_ids(self, text: str) -> list[int]:
        """Token ids of a transcript as the LLM should write it, without the end token."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [i for i in ids if i != self.eos_token_id]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()


def with_lora(model: nn.Module, config: LLMConfig) -> nn.Module:
    """`model` with fresh LoRA adapters (peft) when `config.lora_rank` > 0, else `model` itself."""
    if config.lora_rank <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM"))


def embedding_scale(model: nn.Module) -> float:
    """Factor by which the input-embedding module scales looked-up rows (Gemma: sqrt(hidden)).

    Speech embeddings bypass that module, so an adapter must produce vectors at this scale.
    """
    embeddings = model.get_input_embeddings()
    ids = torch.arange(min(8, embeddings.weight.shape[0]))
    with torch.no_grad():
        looked_up = embeddings(ids).float()
        raw = embeddings.weight[ids].float()
    return float(looked_up.norm() / raw.norm().clamp_min(1e-12))


class LLM(nn.Module):
    """A causal LM fed with a mix of text-token and modality embeddings."""

    def __init__(self, model: nn.Module, tokenizer, config: LLMConfig, source_checksum: Optional[str] = None):
        super().__init__()
        from xasr.hub import weights_checksum

        self.config = config
        self.tokenizer = tokenizer
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model.eval()
        # the frozen weights as their source gave them, before any cast: what model dirs record
        self.source_checksum = source_checksum or weights_checksum(model)
        self.dtype = resolve_dtype(config.dtype)
        model.to(self.dtype)  # frozen, so no float32 master copy is kept
        self.model = with_lora(model, config)
        self.template = PromptTemplate(tokenizer, config.instruction, config.system_prompt)
        self._context_templates: dict[str, PromptTemplate] = {}
        self.hidden_size: int = model.get_input_embeddings().weight.shape[1]
        self.embedding_scale = embedding_scale(model)
        self._prefix_states: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @classmethod
    def from_config(cls, config: LLMConfig) -> "LLM":
        from xasr.hub import load_causal_lm

        model, tokenizer, checksum = load_causal_lm(config.source, resolve_dtype(config.dtype))
        return cls(model, tokenizer, config, source_checksum=checksum)

    def train(self, mode: bool = True) -> "LLM":
        # frozen weights stay in eval mode (no dropout) unless LoRA is being trained
        super().train(mode and self.config.lora_rank > 0)
        return self

    def set_dtype(self, name: str) -> "LLM":
        """Hold the frozen weights in another dtype (see LLMConfig.dtype); cached prompt states are dropped."""
        self.dtype = resolve_dtype(name, self.model.get_input_embeddings().weight.device)
        self.model.to(self.dtype)
        self._prefix_states.clear()
        return self

    @property
    def base_model(self) -> nn.Module:
        """The transformers causal LM (inside peft's wrapper when LoRA is on)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def template_with_context(self, context: Optional[str]) -> PromptTemplate:
        """The training prompt, plus `context` text in the system message (cached per context)."""
        if not context:
            return self.template
        if context not in self._context_templates:
            self._context_templates[context] = PromptTemplate(
                self.tokenizer, self.config.instruction, self.config.system_prompt, context=context)
        return self._context_templates[context]

    @property
    def output_embeddings(self) -> nn.Module:
        return self.model.get_output_embeddings()

    def embed_ids(self, ids: Sequence[int]) -> torch.Tensor:
        embeddings = self.model.get_input_embeddings()
        return embeddings(torch.tensor(list(ids), dtype=torch.long, device=embeddings.weight.device))

    def build_inputs(
        self,
        modalities: dict[str, Sequence[torch.Tensor]],
        transcripts: Optional[Sequence[Sequence[int]]] = None,
        padding_side: str = "right",
        template: Optional[PromptTemplate] = None,
        with_prefix: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Assemble a batch: `modalities` maps a placeholder to one [N_i, hidden] tensor per item.

        With transcripts (training) the transcript and EOS follow the prompt and `labels` mark
        them; without (decoding) the sequence ends where the LLM starts writing. `template`
        replaces the training prompt (e.g. one with decoding context). `with_prefix=False` leaves
        out the prompt text before the first placeholder (see `prefix_cache`).
        Returns inputs_embeds [B, L, H] in the LLM's dtype, attention_mask [B, L], labels [B, L] or None.
        """
        template = template or self.template
        batch_size = len(next(iter(modalities.values())))
        for segment in template.segments:
            if isinstance(segment, str) and segment not in modalities:
                raise ValueError(f"the prompt has {segment} but no {segment} input was given")
        segments = template.segments if with_prefix else template.segments[len(template.prefix_ids) > 0:]
        # the prompt's text pieces are the same for every item: embed them once per batch
        prompt = [segment if isinstance(segment, str) else self.embed_ids(segment) for segment in segments]
        sequences, label_rows = [], []
        for b in range(batch_size):
            parts, labels = [], []
            for segment in prompt:
                part = modalities[segment][b].to(self.dtype) if isinstance(segment, str) else segment
                parts.append(part)
                labels += [IGNORE_INDEX] * len(part)
            if transcripts is not None:
                target = list(transcripts[b]) + [template.eos_token_id]
                parts.append(self.embed_ids(target))
                labels += target
            sequences.append(torch.cat(parts))
            label_rows.append(labels)
        return pad_embeddings(sequences, label_rows if transcripts is not None else None, padding_side)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                labels: Optional[torch.Tensor] = None):
        return self.model(inputs_embeds=inputs_embeds.to(self.dtype), attention_mask=attention_mask, labels=labels)

    def prefix_cache(self, template: Optional[PromptTemplate] = None, batch_size: int = 1):
        """The KV cache of the prompt text before the first placeholder, for `batch_size` rows.

        That text is the same for every utterance, so the frozen LLM encodes it once (and, without
        LoRA, once per template for the life of the model); with LoRA it is recomputed per call so
        gradients reach the LoRA weights. Returns (cache or None, its length in tokens).
        """
        from transformers import DynamicCache

        template = template or self.template
        if not template.prefix_ids:
            return None, 0
        key = (id(template), self.model.get_input_embeddings().weight.device)
        states = self._prefix_states.get(key) if self.config.lora_rank == 0 else None
        if states is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.lora_rank > 0):
                out = self.model(inputs_embeds=self.embed_ids(template.prefix_ids)[None], use_cache=True)
            states = [(layer[0], layer[1]) for layer in out.cache]
            if self.config.lora_rank == 0:
                self._prefix_states[key] = states
        expanded = [(k.expand(batch_size, *k.shape[1:]), v.expand(batch_size, *v.shape[1:])) for k, v in states]
        return DynamicCache(expanded, config=self.base_model.config), len(template.prefix_ids)

    def transcript_loss(self, modalities: dict[str, Sequence[torch.Tensor]],
                        transcripts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean cross-entropy of the transcript tokens and EOS (as `forward(...).loss`), computed
        on the prompt prefix's cached keys/values and with logits only where a token is predicted."""
        batch_size = len(next(iter(modalities.values())))
        cache, prefix = self.prefix_cache(self.template, batch_size)
        embeds, mask, labels = self.build_inputs(modalities, transcripts, with_prefix=cache is None)
        if cache is not None:
            mask = torch.cat([mask.new_ones(batch_size, prefix), mask], dim=1)
        return self._loss_at_labels(embeds, mask, labels, cache)

    def text_loss(self, prompts: Sequence[torch.Tensor], texts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean cross-entropy of each item's text tokens (no end token) read after its own prompt
        embeddings [P_i, hidden]: the LLM as a language model given a context (e.g. a picture)."""
        sequences, label_rows = [], []
        for prompt, ids in zip(prompts, texts):
            sequences.append(torch.cat([prompt.to(self.dtype), self.embed_ids(ids)]))
            label_rows.append([IGNORE_INDEX] * len(prompt) + list(ids))
        embeds, mask, labels = pad_embeddings(sequences, label_rows, "right")
        return self._loss_at_labels(embeds, mask, labels)

    def _loss_at_labels(self, embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, cache=None):
        base = self.base_model
        hidden = base.get_decoder()(inputs_embeds=embeds, attention_mask=mask, cache=cache,
                                    use_cache=cache is not None).last_hidden_state
        targets = labels[:, 1:]
        predicting = targets != IGNORE_INDEX  # position i predicts token i + 1
        logits = base.get_output_embeddings()(hidden[:, :-1][predicting]).float()
        softcap = getattr(base.config.get_text_config(), "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return torch.nn.functional.cross_entropy(logits, targets[predicting])

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                 max_new_tokens: int, num_beams: int = 1, **kwargs) -> list[list[int]]:
        """Token ids written after the prompt, one list per item (left-padded inputs)."""
        output = self.model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
            num_beams=num_beams, do_sample=False, eos_token_id=self.template.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else self.template.eos_token_id, **kwargs)
        results = []
        for row in output.tolist():
            if self.template.eos_token_id in row:
                row = row[: row.index(self.template.eos_token_id)]
            results.append(row)
        return results


def pad_embeddings(sequences: list[torch.Tensor], labels: Optional[list[list[int]]], side: str):
    """[L_i, H] sequences -> (embeds [B, L, H], attention mask [B, L], labels [B, L] or None), padded
    on `side` ("left" for decoding: every sequence ends at the last column)."""
    longest = max(len(s) for s in sequences)
    hidden = sequences[0].shape[-1]
    embeds = sequences[0].new_zeros(len(sequences), longest, hidden)
    mask = torch.zeros(len(sequences), longest, dtype=torch.long, device=embeds.device)
    label_tensor = (torch.full((len(sequences), longest), IGNORE_INDEX, dtype=torch.long, device=embeds.device)
                    if labels is not None else None)
    for b, sequence in enumerate(sequences):
        n = len(sequence)
        span = slice(0, n) if side == "right" else slice(longest - n, longest)
        embeds[b, span] = sequence
        mask[b, span] = 1
        if label_tensor is not None:
            label_tensor[b, span] = torch.tensor(labels[b], dtype=torch.long)
    return embeds, mask, label_tensor
