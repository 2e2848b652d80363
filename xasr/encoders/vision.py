"""Frozen vision encoders behind one interface: `encoder(pixels [B, 3, S, S]) -> patch features [B, N, D]`.

Any `transformers` vision model by source: ViT, DINOv2, or the vision tower of CLIP / SigLIP.
`preprocess` turns images (PIL, HxWx3 uint8 arrays or paths) into the pixels the model was trained
on: the shorter side resized to `image_size`, a centre crop, the model's mean and std. A clip
(`load_frames`: a video file, a folder of frames or an animated image) is T such images.
`VisionFeatureCache` keeps the frozen features of each picture or clip, like cached speech features.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xasr.config import VisionEncoderConfig
from xasr.io import atomic_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Image = Union[str, Path, np.ndarray, "PIL.Image.Image"]  # noqa: F821


class VisionEncoder(nn.Module):
    """A frozen `transformers` vision model; outputs every token of its last (or `layer`) hidden state,
    [CLS] and registers included, so an adapter may read all of them."""

    def __init__(self, model: nn.Module, image_size: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, layer: Optional[int] = None):
        super().__init__()
        self.model = getattr(model, "vision_model", model)  # CLIP / SigLIP: the vision tower only
        config = self.model.config
        self.output_dim: int = config.hidden_size
        self.image_size = image_size
        self.layer = layer
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_config(cls, config: VisionEncoderConfig) -> "VisionEncoder":
        from transformers import AutoConfig, AutoModel

        if config.hf_config is not None:
            settings = dict(config.hf_config)
            model = AutoModel.from_config(AutoConfig.for_model(settings.pop("model_type"), **settings))
            size = config.image_size or getattr(model.config, "image_size", 224)
            return cls(model, size, layer=config.layer)
        if not config.source:
            raise ValueError("a vision encoder needs a source (or hf_config for random weights)")
        from xasr.hub import vision_model_dir

        directory = vision_model_dir(config.source)
        model = AutoModel.from_pretrained(directory, dtype=torch.float32)
        size, mean, std = _preprocessing(directory)
        model_size = getattr(getattr(model, "vision_model", model).config, "image_size", 224)
        return cls(model, config.image_size or size or model_size, mean, std, layer=config.layer)

    def train(self, mode: bool = True) -> "VisionEncoder":
        return super().train(False)  # frozen: always in eval mode

    def preprocess(self, images: Sequence[Image]) -> Tensor:
        """[B, 3, S, S] normalised pixels: shorter side resized to S (bicubic), centre crop."""
        return torch.stack([self.preprocess_one(image) for image in images])

    def forward(self, pixels: Tensor) -> Tensor:
        with torch.no_grad():
            outputs = self.model(pixel_values=pixels.to(self.mean.device), output_hidden_states=self.layer is not None)
        return outputs.last_hidden_state if self.layer is None else outputs.hidden_states[self.layer]

    def preprocess_one(self, image: Image) -> Tensor:
        """[3, S, S] normalised pixels of one image; ValueError naming it if it cannot be read."""
        array = load_image(image)
        x = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255.0
        height, width = x.shape[-2:]
        scale = self.image_size / min(height, width)
        size = (max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)[0]
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        x = x[:, top: top + self.image_size, left: left + self.image_size]
        return (x - self.mean.cpu()) / self.std.cpu()


def load_image(image: Image) -> np.ndarray:
    """HxWx3 uint8 RGB from a path, a PIL image or an array (grey or RGBA become RGB; transparency
    over white, as stamps and icons are drawn)."""
    if isinstance(image, np.ndarray):
        array = image
    else:
        from PIL import Image as PILImage

        try:
            picture = PILImage.open(image) if isinstance(image, (str, Path)) else image
            if picture.mode in ("RGBA", "LA", "P"):
                picture = picture.convert("RGBA")
                background = PILImage.new("RGBA", picture.size, (255, 255, 255, 255))
                picture = PILImage.alpha_composite(background, picture)
            array = np.asarray(picture.convert("RGB"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{image}: not a readable image ({e})") from None
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 image, got shape {array.shape}")
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def load_frames(path: str | Path, num_frames: int) -> list[np.ndarray]:
    """`num_frames` HxWx3 uint8 frames spread evenly over a clip (fewer if it has fewer): a folder of
    frame images (sorted by name), an animated image (GIF, APNG, WebP) or a video file (PyAV:
    `pip install av`). ValueError naming the clip if it cannot be read."""
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: a folder with no frame images ({', '.join(FRAME_SUFFIXES)})")
        return [load_image(files[i]) for i in _spread(len(files), num_frames)]
    if not path.is_file():
        raise ValueError(f"{path}: no such video file or frame folder")
    if path.suffix.lower() in FRAME_SUFFIXES:
        from PIL import Image as PILImage, ImageSequence

        try:
            frames = [load_image(frame.copy()) for frame in ImageSequence.Iterator(PILImage.open(path))]
        except OSError as e:
            raise ValueError(f"{path}: not a readable image ({e})") from None
        return [frames[i] for i in _spread(len(frames), num_frames)]
    try:
        import av
    except ImportError:
        raise ValueError(f"{path}: reading video files needs PyAV (pip install av), or give a folder of "
                         "frames") from None
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise ValueError(f"{path}: not a readable video ({e})") from None
    if not frames:
        raise ValueError(f"{path}: a video with no frames")
    return [np.ascontiguousarray(frames[i]) for i in _spread(len(frames), num_frames)]


def _spread(total: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over `total` items, the first and the last included."""
    if total <= wanted:
        return list(range(total))
    if wanted == 1:
        return [total // 2]
    return [round(i * (total - 1) / (wanted - 1)) for i in range(wanted)]


class VisionFeatureCache:
    """The frozen vision encoder's features of each picture or clip by key (its path and frame count),
    in memory and, given `directory`, on disk (float16), so later epochs and resumed runs skip the
    encoder. `tag` (the vision source) keeps the features of different encoders apart."""

    def __init__(self, directory: Optional[str | Path] = None, tag: str = ""):
        self.directory = Path(directory) if directory is not None else None
        self.tag = tag
        self._memory: dict[str, Tensor] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        return self.directory / (hashlib.sha1(f"{self.tag}|{key}".encode()).hexdigest() + ".pt")

    def get(self, key: str) -> Optional[Tensor]:
        if key in self._memory:
            return self._memory[key]
        if self.directory is not None and self._file(key).is_file():
            self._memory[key] = torch.load(self._file(key), map_location="cpu")
            return self._memory[key]
        return None

    def put(self, key: str, features: Tensor) -> None:
        features = features.detach().to("cpu", torch.float16)
        self._memory[key] = features
        if self.directory is not None:
            with atomic_path(self._file(key), suffix=".pt") as tmp:
                torch.save(features, tmp)

    def __len__(self) -> int:
        return len(self._memory)


def _preprocessing(directory: Path) -> tuple[Optional[int], tuple, tuple]:
    """(crop size, mean, std) from a Hugging Face dir's preprocessor_config.json (no size and
    ImageNet's mean and std if it has none)."""
    path = Path(directory) / "preprocessor_config.json"
    settings = json.loads(path.read_text()) if path.is_file() else {}
    size = settings.get("crop_size") or settings.get("size")
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge")
    mean, std = settings.get("image_mean", IMAGENET_MEAN), settings.get("image_std", IMAGENET_STD)
    return (int(size) if size else None), tuple(mean), tuple(std)
