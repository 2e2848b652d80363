"""Model loading in one place: a packaged model by name, a model directory or a Hugging Face repo
id becomes an `XASRModel` in the asked dtype, optionally with int8 layers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import torch

from xasr.model import XASRModel
from xasr.pretrained import DEFAULT_MODEL, packaged_model_dir, packaged_models


def load_model(name_or_dir: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
               int8: bool = False, llm_dtype: Optional[str] = None) -> XASRModel:
    """An xasr model: a packaged one by name (default: `default-en`), a local directory (what
    `xasr train` writes) or a Hugging Face repo id.

    `int8` stores the frozen encoder's and LLM's linear weights in int8 (`quantize_int8`).
    `llm_dtype` holds the frozen LLM in float32, bfloat16 or "auto" for decoding, whatever it was
    trained in (None: as the model's config says, e.g. "auto": bf16 where the CPU has native bf16).
    """
    directory = resolve_model_dir(name_or_dir)
    model = XASRModel.load(directory, llm_dtype=llm_dtype).to(device).eval()
    if llm_dtype is not None:
        model.llm.set_dtype(llm_dtype)  # "auto" on a device other than the default one
    if int8:
        quantize_int8(model)
    return model


def resolve_model_dir(name_or_dir: Union[str, Path, None] = None) -> Path:
    """The directory of a packaged model name (default: `default-en`), a local directory or a
    Hugging Face repo id (downloaded); FileNotFoundError saying what to give otherwise."""
    name_or_dir = DEFAULT_MODEL if name_or_dir is None else name_or_dir
    directory = Path(name_or_dir)
    if not directory.is_dir() and packaged_model_dir(str(name_or_dir)) is not None:
        directory = packaged_model_dir(str(name_or_dir))
    elif str(name_or_dir) == DEFAULT_MODEL:
        raise FileNotFoundError(f"this xasr install has no packaged model '{DEFAULT_MODEL}' "
                                f"(packaged: {', '.join(packaged_models()) or 'none'}); give --model DIR")
    if not directory.is_dir():
        if directory.exists() or str(name_or_dir).startswith((".", "/")) or str(name_or_dir).count("/") != 1:
            raise FileNotFoundError(f"{name_or_dir}: no such model directory (xasr train writes one to EXP_DIR/model)")
        from huggingface_hub import snapshot_download

        try:
            directory = Path(snapshot_download(str(name_or_dir)))
        except Exception as e:
            raise FileNotFoundError(f"{name_or_dir}: not a local model directory, and the Hugging Face hub "
                                    f"could not provide it ({type(e).__name__}); give a model directory") from None
    return directory


def model_fingerprint(directory: Union[str, Path]) -> str:
    """A short hash of a model directory's config and trained weights: two directories with the same
    fingerprint decode alike."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in [directory / "config.json", *sorted(directory.rglob("*.safetensors"))]:  # LoRA in lora/ too
        if path.is_file():
            digest.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def quantize_int8(model: XASRModel) -> XASRModel:
    """int8 weights (torchao's weight-only int8: per-channel scales, activations kept in the layer's
    dtype) for the encoder's linear layers and every linear layer of the LLM but its output layer,
    which the C-Former's token head reads."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    output_layer = model.llm.model.get_output_embeddings()
    quantize_(model.encoder, Int8WeightOnlyConfig())
    quantize_(model.llm.model, Int8WeightOnlyConfig(),
              filter_fn=lambda module, name: isinstance(module, torch.nn.Linear) and module is not output_layer)
    return model
