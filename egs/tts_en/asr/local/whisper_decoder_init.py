#!/usr/bin/env python3
"""Start a C-Former whose layers after CIF are Whisper's decoder layers, trained on real speech.

    local/whisper_decoder_init.py --config conf/cformer.yaml --model ../../../xasr/pretrained/default-en \
        --set model.cformer.n_layers=4 --set model.cformer.cross_attention=true \
        --set model.cformer.cross_attention_context=features --output-dir EXP/whisper_init

Whisper's decoder already knows how to read its encoder's frames into tokens; a C-Former trained on
synthetic speech only has to learn that from TTS voices. Each of the C-Former's layers after CIF has
the same shape as a decoder layer (pre-norm self-attention, cross-attention, GELU MLP), so the decoder's
weights are copied in: the C-Former's `n_layers`, `n_heads`, `d_model` and `ff_mult` must be the
decoder's, and its cross-attention must read the encoder's own outputs (`cross_attention_context:
features`). What changes: self-attention is bidirectional and the layers read CIF vectors where the
decoder read token embeddings, so the model must still be trained (`xasr train --stage convert
--init-from OUTPUT`). The input projection and CIF come from `--model` when given (a C-Former on the same
encoder), else stay fresh; the projection into the LLM starts fresh.
"""

import argparse
from pathlib import Path

import torch

from xasr.config import load_config_file
from xasr.hub import load_whisper
from xasr.model import XASRModel


def decoder_layer_state(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """One transformers WhisperDecoderLayer as an xasr.nn.TransformerBlock state dict (key projections
    have no bias in Whisper: theirs is zero)."""
    def qkv(attention, names):
        weights = [getattr(attention, n).weight for n in names]
        biases = [getattr(attention, n).bias if getattr(attention, n).bias is not None
                  else torch.zeros(weights[i].shape[0]) for i, n in enumerate(names)]
        return torch.cat(weights), torch.cat(biases)

    own, cross = layer.self_attn, layer.encoder_attn
    self_w, self_b = qkv(own, ["q_proj", "k_proj", "v_proj"])
    kv_w, kv_b = qkv(cross, ["k_proj", "v_proj"])
    state = {
        "attention_norm.weight": layer.self_attn_layer_norm.weight,
        "attention_norm.bias": layer.self_attn_layer_norm.bias,
        "attention.qkv.weight": self_w, "attention.qkv.bias": self_b,
        "attention.out.weight": own.out_proj.weight, "attention.out.bias": own.out_proj.bias,
        "cross_attention_norm.weight": layer.encoder_attn_layer_norm.weight,
        "cross_attention_norm.bias": layer.encoder_attn_layer_norm.bias,
        "cross_attention.q.weight": cross.q_proj.weight, "cross_attention.q.bias": cross.q_proj.bias,
        "cross_attention.kv.weight": kv_w, "cross_attention.kv.bias": kv_b,
        "cross_attention.out.weight": cross.out_proj.weight, "cross_attention.out.bias": cross.out_proj.bias,
        "mlp_norm.weight": layer.final_layer_norm.weight, "mlp_norm.bias": layer.final_layer_norm.bias,
        "mlp.0.weight": layer.fc1.weight, "mlp.0.bias": layer.fc1.bias,
        "mlp.2.weight": layer.fc2.weight, "mlp.2.bias": layer.fc2.bias,
    }
    return {k: v.detach().clone() for k, v in state.items()}


def copy_whisper_decoder(model: XASRModel, whisper) -> None:
    """Whisper's decoder layers and final norm into `model`'s C-Former layers after CIF, checking shapes."""
    cformer, decoder = model.adapter.config, whisper.model.decoder
    whisper_config = whisper.config
    wanted = {"n_layers": whisper_config.decoder_layers, "n_heads": whisper_config.decoder_attention_heads,
              "d_model": whisper_config.d_model, "ff_mult": whisper_config.decoder_ffn_dim // whisper_config.d_model}
    wrong = {k: (getattr(cformer, k), v) for k, v in wanted.items() if getattr(cformer, k) != v}
    if wrong or not cformer.cross_attention or cformer.cross_attention_context != "features":
        raise SystemExit(f"the C-Former must match Whisper's decoder: {wanted}, cross_attention true, "
                         f"cross_attention_context features (differs: {wrong})")
    for block, layer in zip(model.adapter.blocks, decoder.layers):
        block.load_state_dict(decoder_layer_state(layer))
    model.adapter.norm.load_state_dict({k: v.detach().clone() for k, v in decoder.layer_norm.state_dict().items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="recipe YAML (its encoder must be Whisper)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override section.key=value, repeatable (as in xasr train --set)")
    parser.add_argument("--model", type=Path, help="trained C-Former on the same encoder: its input projection and CIF")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args()

    config, _ = load_config_file(args.config, "convert", args.overrides)
    if config.encoder.kind != "whisper":
        raise SystemExit(f"{args.config}: the encoder is {config.encoder.kind}; Whisper's decoder fits only Whisper")
    torch.manual_seed(0)
    model = XASRModel.from_config(config)
    copy_whisper_decoder(model, load_whisper(config.encoder.source))
    if args.model is not None:
        trained = XASRModel.load(args.model, llm=model.llm, check_frozen=False)
        kept = {k: v for k, v in trained.adapter.state_dict().items() if k.startswith(("input_proj.", "cif."))}
        model.adapter.load_state_dict(kept, strict=False)
        print(f"input projection and CIF from {args.model} ({len(kept)} tensors)")
    print(f"Whisper decoder ({config.encoder.source}) -> {model.save_pretrained(args.output_dir)}")


if __name__ == "__main__":
    main()
