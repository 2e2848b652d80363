"""GGUF causal LMs: dequantised by transformers to fp32 and saved in Hugging Face format, plus a
bf16 copy and the fp32 weights' checksum."""


from __future__ import annotations

from pathlib import Path

import torch

from xasr.hub.checksum import weights_checksum
from xasr.hub.sources import ResolvedSource

CHECKSUM_FILE = "xasr_weights_checksum.txt"  # in a converted causal-LM dir: weights_checksum of its fp32 weights


BF16_DIR = "bfloat16"  # ... and the same weights in bf16, loaded without an fp32 copy


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
