"""The C-Former (X-LLM's speech interface): frames -> CIF (one vector per token) -> transformer -> LLM space.

Embedding scale. Some LLMs multiply looked-up token embeddings by a constant (Gemma: sqrt(hidden)).
In transformers 5 that happens inside the input-embedding module (`GemmaTextScaledWordEmbedding`),
and speech vectors reach the LLM as `inputs_embeds`, past that module. So the projection predicts
vectors in the embedding *table's* space (the space stage 1 compares against the output embedding,
after dividing by the scale) and its output is multiplied by `llm_embedding_scale`, putting speech
at the same magnitude as the scaled text embeddings around it. 1.0 for LLMs that do not scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor, nn

from xasr.adapters.alignment import NUM_CLASSES
from xasr.adapters.cif import CIF, CIFOutput
from xasr.adapters.speller import TokenSpeller
from xasr.config import CFormerConfig, CIFConfig
from xasr.encoders.base import lengths_to_mask
from xasr.nn import TransformerBlock, sinusoids


@dataclass
class AdapterOutput:
    embeddings: Tensor  # [B, N, llm_hidden_size], zero past lengths[b], already at the LLM's embedding scale
    lengths: Tensor  # [B]
    cif: Optional[CIFOutput] = None  # C-Former only
    char_log_probs: Optional[Tensor] = None  # [B, T, classes]: the character CTC head on the frames (cformer.char_ctc)


CFormerOutput = AdapterOutput


class CFormer(nn.Module):
    """input linear -> frame layers -> CIF -> + positions -> transformer layers -> projection into the LLM's
    embedding space.

    The frame layers (`frame_layers`, often 0) let the frozen encoder's frames be re-read in context before
    CIF weighs and sums them. With `cross_attention` each layer after CIF also attends to those frames, as
    Paraformer's decoder does, so a vector whose integration window straddles two tokens can look again at
    the frames it summed (or, with `cross_attention_context: features`, at the encoder's own outputs, which
    lets the layers start from Whisper's decoder). Both start as the identity (zero-initialised residual
    outputs), so a trained C-Former grows them without changing what it computes. So do the speller
    (`spelling_dim`), a spelling score of the stage-1 token head, and the character CTC head (`char_ctc`),
    whose forced alignment tells CIF where tokens end (xasr/adapters/alignment.py).
    """

    def __init__(self, config: CFormerConfig):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(config.input_dim, config.d_model)
        self.frame_blocks = nn.ModuleList([TransformerBlock(config.d_model, config.n_heads, config.ff_mult,
                                                            config.dropout) for _ in range(config.frame_layers)])
        self.cif = CIF(CIFConfig(input_dim=config.d_model, threshold=config.cif_threshold,
                                 kernel_size=config.cif_kernel_size, conv_groups=config.cif_conv_groups,
                                 tail_threshold=config.cif_tail_threshold))
        self.dropout = nn.Dropout(config.dropout)
        if config.cross_attention_context not in ("frames", "features"):
            raise ValueError(f"cformer.cross_attention_context '{config.cross_attention_context}': "
                             "use frames or features")
        context_dim = None
        if config.cross_attention:
            context_dim = config.d_model if config.cross_attention_context == "frames" else config.input_dim
        self.blocks = nn.ModuleList([TransformerBlock(config.d_model, config.n_heads, config.ff_mult, config.dropout,
                                                      context_dim=context_dim) for _ in range(config.n_layers)])
        identity_at_init = [(b.attention.out, b.mlp[-1]) for b in self.frame_blocks]
        identity_at_init += [(b.cross_attention.out,) for b in self.blocks if config.cross_attention]
        for layers in identity_at_init:
            for last in layers:
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        self.norm = nn.LayerNorm(config.d_model)
        self.output_proj = nn.Linear(config.d_model, config.llm_hidden_size)
        # read by the token head, not here: the model gives it the LLM's vocabulary (set_vocabulary)
        self.speller = (TokenSpeller(config.llm_hidden_size, config.spelling_dim, config.spelling_buckets)
                        if config.spelling_dim > 0 else None)
        self.char_head = nn.Linear(config.d_model, NUM_CLASSES) if config.char_ctc else None

    def forward(self, features: Tensor, feature_lengths: Tensor,
                target_lengths: Optional[Tensor] = None) -> AdapterOutput:
        """features [B, T, input_dim] -> one LLM embedding per token; `target_lengths` (training) fixes the count."""
        frames = self.input_proj(features)
        frame_mask = lengths_to_mask(feature_lengths.clamp_min(1), frames.shape[1])
        for block in self.frame_blocks:
            frames = block(frames, frame_mask)
        char_log_probs = None
        if self.char_head is not None and target_lengths is not None:  # a training signal only
            char_log_probs = self.char_head(frames).float().log_softmax(-1)
        cif = self.cif(frames, feature_lengths, target_lengths)
        tokens, lengths = cif.tokens, cif.token_lengths
        x = self.dropout(tokens + sinusoids(tokens.shape[1], tokens.shape[2], tokens.device).to(tokens.dtype))
        key_mask = lengths_to_mask(lengths.clamp_min(1), x.shape[1])  # an empty row still attends somewhere
        context = None
        if self.config.cross_attention:
            context = frames if self.config.cross_attention_context == "frames" else features.to(frames.dtype)
        for block in self.blocks if x.shape[1] else []:  # no token fired anywhere in the batch: nothing to mix
            x = block(x, key_mask, context, frame_mask)
        embeddings = self.output_proj(self.norm(x)) * self.config.llm_embedding_scale
        embeddings = embeddings * lengths_to_mask(lengths, x.shape[1])[..., None]
        return AdapterOutput(embeddings, lengths, cif, char_log_probs)
