"""Model loading in one place: a packaged model by name, a model directory or a Hugging Face repo
id becomes an `XASRModel` in the asked dtype, optionally with int8 layers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from xasr.model import XASRModel
from xasr.pretrained import DEFAULT_MODEL, packaged_model_dir, packaged_models


def load_model(name_or_dir: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
               int8: bool = False, llm_dtype: Optional[str] = None) -> XASRModel:
    """An xasr model: a packaged one by name (default: `default-en`), a local directory (what
    `xasr train` writes) or a Hugging Face repo id.

    `int8` quantises the frozen encoder's and LLM's linear layers dynamically (CPU only).
    `llm_dtype` holds the frozen LLM in float32, bfloat16 or "auto" for decoding, whatever it was
    trained in (None: as the model's config says, e.g. "auto": bf16 where the CPU has native bf16).
    """
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
    if int8:
        llm_dtype = "float32"  # dynamic int8 quantises float32 layers
    model = XASRModel.load(directory, llm_dtype=llm_dtype).to(device).eval()
    if llm_dtype is not None:
        model.llm.set_dtype(llm_dtype)  # "auto" on a device other than the default one
    if int8:
        if torch.device(device).type != "cpu":
            raise ValueError("int8 dynamic quantisation runs on the CPU only; drop --int8 or use --device cpu")
        quantize_int8(model)
    return model


def quantize_int8(model: XASRModel) -> XASRModel:
    """Dynamic int8 for the encoder's linear layers and the LLM's attention projections (CPU).

    The LLM's MLPs and output layer stay in float: with them in int8 a frozen LLM fed adapter
    embeddings stopped transcribing and started chatting (FSDD: WER 0.4% -> 554%; MLPs alone 708%),
    most likely because per-tensor int8 activations lose the small values beside a few huge ones.
    """
    import warnings

    from torch.ao.quantization import quantize_dynamic

    model.llm.set_dtype("float32")  # dynamic int8 quantises float32 layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization moves to torchao
        model.encoder = quantize_dynamic(model.encoder, {torch.nn.Linear}, dtype=torch.qint8)
        output_layer = model.llm.model.get_output_embeddings()
        names = {name for name, module in model.llm.model.named_modules()
                 if isinstance(module, torch.nn.Linear) and module is not output_layer
                 and "mlp" not in name.split(".")}
        model.llm.model = quantize_dynamic(model.llm.model, names, dtype=torch.qint8)
    return model
