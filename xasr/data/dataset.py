"""From lhotse cuts to model batches, and the on-disk cache of frozen-encoder outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from lhotse import CutSet, MonoCut
from lhotse.features.io import NumpyHdf5Writer
from tqdm import tqdm

from xasr.audio import SAMPLE_RATE
from xasr.data.batch import Batch, Visual, pad_stack, stack_images
from xasr.distributed import DistributedContext
from xasr.encoders.vision import VisionFeatureCache, load_frames
from xasr.io import atomic_path

log = logging.getLogger(__name__)

FEATURE_FIELD = "encoder_features"  # custom field of a cut holding its cached encoder output
IMAGE_FIELD = "image"  # supervision custom field: the path of the picture an utterance is paired with
VIDEO_FIELD = "video"  # ... or of its clip: a video file, a folder of frames or an animated image


def cut_text(cut) -> str:
    return " ".join(s.text for s in cut.supervisions if s.text).strip()


def cut_waveform(cut) -> np.ndarray:
    """Mono float32 audio of a cut at 16 kHz."""
    audio = cut.resample(SAMPLE_RATE).load_audio() if cut.sampling_rate != SAMPLE_RATE else cut.load_audio()
    return audio.mean(axis=0).astype(np.float32)


def image_of(cut) -> Optional[str]:
    """The picture a cut is paired with (its first supervision's `custom["image"]`), if any."""
    visual = visual_of(cut)
    return visual.path if visual is not None and visual.kind == "image" else None


def visual_of(cut) -> Optional[Visual]:
    """What a cut is shown: its first supervision's `custom["image"]` (a picture) or, else,
    `custom["video"]` (a video file, a folder of frames or an animated image)."""
    for supervision in cut.supervisions[:1]:
        custom = supervision.custom or {}
        for field in (IMAGE_FIELD, VIDEO_FIELD):
            if custom.get(field):
                return Visual(field, str(custom[field]))
    return None


class PictureReader:
    """Pixels, or frozen vision features, of what a batch's items are shown.

    `image_pixels` (a picture's path or HxWx3 array -> [3, S, S], e.g. `VisionEncoder.preprocess_one`)
    reads pictures and the `num_frames` frames sampled from a clip (`load_frames`). A picture or clip
    that cannot be read is named once in the log and kept in `failures`; its items, like those
    shown nothing, are speech-only. `cache` keeps the pixels of every path read (decoding, where one
    picture may serve every input). With `encode` (pixels [T, 3, S, S] -> features [T, N, D], the
    frozen vision encoder) batches carry features instead of pixels, kept in `feature_cache`.
    """

    def __init__(self, image_pixels: Callable[[Any], torch.Tensor], num_frames: int = 4, cache: bool = False,
                 encode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 feature_cache: Optional[VisionFeatureCache] = None):
        self.image_pixels = image_pixels
        self.num_frames = num_frames
        self.encode = encode
        self.feature_cache = feature_cache if feature_cache is not None else (VisionFeatureCache() if encode else None)
        self.failures: dict[str, str] = {}
        self._cache: Optional[dict[Visual, torch.Tensor]] = {} if cache else None

    def fill(self, batch: Batch, visuals: list[Optional[Visual]]) -> Batch:
        """Set the batch's `visuals` and `images` (or `image_features`) and `image_frames`."""
        if self.encode is None:
            clips = [self._pixels(v) if v is not None else None for v in visuals]
            batch.images, batch.image_frames = stack_images(clips)
        else:
            clips = [self._features(v) if v is not None else None for v in visuals]
            batch.image_features, batch.image_frames = stack_images(clips)
        batch.visuals = [v if clip is not None else None for v, clip in zip(visuals, clips)]
        return batch

    def _key(self, visual: Visual) -> str:
        return f"{visual.kind}:{visual.path}" + (f"#{self.num_frames}" if visual.kind == "video" else "")

    def _features(self, visual: Visual) -> Optional[torch.Tensor]:
        key = self._key(visual)
        if self.feature_cache.get(key) is None:
            pixels = self._pixels(visual)
            if pixels is None:
                return None
            self.feature_cache.put(key, self.encode(pixels))
        return self.feature_cache.get(key)  # float16, in every epoch alike

    def _pixels(self, visual: Visual) -> Optional[torch.Tensor]:
        """[T, 3, S, S] (T = 1 for a picture), or None if it cannot be read."""
        if visual.path in self.failures:
            return None
        if self._cache is not None and visual in self._cache:
            return self._cache[visual]
        try:
            if visual.kind == "video":
                pixels = torch.stack([self.image_pixels(f) for f in load_frames(visual.path, self.num_frames)])
            else:
                pixels = self.image_pixels(visual.path)[None]
        except (OSError, ValueError) as e:
            self.failures[visual.path] = str(e)
            log.warning("%s; used without a picture", e)
            return None
        if self._cache is not None:
            self._cache[visual] = pixels
        return pixels


class SpeechTextDataset(torch.utils.data.Dataset):
    """lhotse-style dataset: indexed by a CutSet (a sampler's batch), returns a `Batch`.

    Uses the cached encoder features when the cuts carry them, the audio otherwise. With `pictures`
    (a `PictureReader`; or `image_pixels`, path -> [3, S, S], e.g. `VisionEncoder.preprocess_one`)
    each cut's picture or clip is loaded too; a cut without one, or whose picture cannot be read
    (counted in `image_failures`), is a speech-only item of the batch.
    """

    def __init__(self, image_pixels: Optional[Callable[[Any], torch.Tensor]] = None,
                 pictures: Optional[PictureReader] = None):
        self.pictures = pictures or (PictureReader(image_pixels) if image_pixels is not None else None)

    @property
    def image_failures(self) -> dict[str, str]:
        return self.pictures.failures if self.pictures is not None else {}

    def __getitem__(self, cuts: CutSet) -> Batch:
        cuts = cuts.sort_by_duration(ascending=False)
        texts = [cut_text(cut) for cut in cuts]
        ids = [cut.id for cut in cuts]
        if all(cut.has_custom(FEATURE_FIELD) for cut in cuts):
            features, lengths = pad_stack([cut.load_custom(FEATURE_FIELD) for cut in cuts])
            batch = Batch(ids=ids, features=features, feature_lengths=lengths, texts=texts)
        else:
            waveforms, lengths = pad_stack([cut_waveform(cut) for cut in cuts])
            batch = Batch(ids=ids, waveforms=waveforms, waveform_lengths=lengths, texts=texts)
        if self.pictures is not None:
            self.pictures.fill(batch, [visual_of(cut) for cut in cuts])
        return batch


@torch.no_grad()
def cache_encoder_features(encoder: torch.nn.Module, cuts: CutSet, storage_dir: Path | str,
                           batch_duration: float = 60.0, device: Optional[torch.device] = None,
                           dtype: torch.dtype = torch.float16, checkpoint_every: int = 2000,
                           ranks: Optional[DistributedContext] = None) -> CutSet:
    """Run the frozen encoder once over `cuts`, store its outputs (HDF5, float16 by default: half the
    disk space and reading time of float32) and return the cuts with them, in their given order.

    Writes `storage_dir/cuts.jsonl.gz` (exactly `cuts`), naming the HDF5 files by absolute path so the
    manifest works from any working directory. When it exists, only the cuts it lacks are
    encoded (into a new HDF5 file beside the others), so a set that grew is not encoded again. Every
    `checkpoint_every` encoded cuts the HDF5 file is closed and `cuts.partial.jsonl.gz` lists the cuts
    cached since the complete manifest, so a stopped run resumes there instead of starting over.
    Under torchrun (`ranks`), each rank encodes its share of the missing cuts into its own files and
    rank 0 writes the manifest of them all.
    """
    storage_dir = Path(storage_dir).absolute()
    rank, world_size = (ranks.rank, ranks.world_size) if ranks is not None else (0, 1)
    manifest = storage_dir / "cuts.jsonl.gz"
    partial = storage_dir / (PARTIAL_MANIFEST if world_size == 1 else f"cuts.partial.rank{rank}.jsonl.gz")
    complete = {c.id: c for c in CutSet.from_file(manifest)} if manifest.is_file() else {}
    partials = sorted(storage_dir.glob("cuts.partial*.jsonl.gz"))
    cached = {**complete, **{c.id: c for path in partials for c in CutSet.from_file(path)}}
    cuts = cuts.to_eager()
    missing = [c for c in cuts if c.id not in cached]
    if ranks is not None:
        ranks.barrier()  # every rank has read what is cached before any rank writes
    if not missing:
        if rank == 0:
            log.info("encoder features of all %d cuts already cached in %s", len(cuts), storage_dir)
            if partials:
                _write_manifest(CutSet.from_cuts(cached[c.id] for c in cuts), manifest)
                for path in partials:
                    path.unlink()
        if ranks is not None:
            ranks.barrier()
        return CutSet.from_cuts(cached[c.id] for c in cuts)
    if rank == 0 and cached:
        log.info("%d of %d cuts already cached in %s; encoding the other %d",
                 len(cuts) - len(missing), len(cuts), storage_dir, len(missing))
    storage_dir.mkdir(parents=True, exist_ok=True)
    device = device or next(encoder.parameters()).device
    frame_shift = 1.0 / encoder.frame_rate
    missing.sort(key=lambda c: c.duration, reverse=True)
    missing = missing[rank::world_size]  # sorted by duration, so the shares are balanced
    part = 0
    with tqdm(total=len(missing), desc="encoder features", disable=rank != 0) as bar:
        for start in range(0, len(missing), checkpoint_every):
            while (storage_dir / _features_file(part, rank, world_size)).exists():
                part += 1
            chunk = missing[start:start + checkpoint_every]
            with NumpyHdf5Writer(storage_dir / _features_file(part, rank, world_size), mode="w") as writer:
                for batch in _duration_batches(chunk, batch_duration):
                    waveforms, lengths = pad_stack([cut_waveform(c) for c in batch])
                    features, feature_lengths = encoder(waveforms.to(device), lengths.to(device))
                    for c, f, n in zip(batch, features.to(dtype).cpu().numpy(), feature_lengths.tolist()):
                        array = writer.store_array(c.id, f[:n], frame_shift=frame_shift, temporal_dim=0,
                                                   start=c.start if isinstance(c, MonoCut) else 0.0)
                        cached[c.id] = _with_features(c, array)
                    bar.update(len(batch))
            if start + checkpoint_every < len(missing) or world_size > 1:
                # only what the complete manifest lacks, so a grown set is not rewritten at every checkpoint
                _write_manifest(CutSet.from_cuts(c for i, c in cached.items() if i not in complete), partial)
    if ranks is not None:
        ranks.barrier()  # every rank's share is in its partial manifest
        if rank == 0:
            cached.update({c.id: c for path in storage_dir.glob("cuts.partial*.jsonl.gz")
                           for c in CutSet.from_file(path)})
    if rank == 0:
        result = CutSet.from_cuts(cached[c.id] for c in cuts)
        _write_manifest(result, manifest)
        for path in storage_dir.glob("cuts.partial*.jsonl.gz"):
            path.unlink()
    if ranks is not None:
        ranks.barrier()  # the manifest is complete before any rank reads it
        if rank != 0:
            return CutSet.from_file(manifest).to_eager()
    return result


PARTIAL_MANIFEST = "cuts.partial.jsonl.gz"  # the cuts a stopped cache run had finished


def _duration_batches(cuts: list, batch_duration: float):
    """Consecutive groups of `cuts` holding at least `batch_duration` seconds (the last may hold less)."""
    batch: list = []
    for cut in cuts:
        batch.append(cut)
        if sum(c.duration for c in batch) >= batch_duration:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_manifest(cuts: CutSet, path: Path) -> None:
    with atomic_path(path, suffix=".jsonl.gz") as tmp:
        cuts.to_file(tmp)


def _features_file(part: int, rank: int = 0, world_size: int = 1) -> str:
    if world_size > 1:
        return f"features.rank{rank}.{part}.h5"
    return "features.h5" if part == 0 else f"features.{part}.h5"


def _with_features(cut, array):
    """`cut` carrying its cached encoder output; an augmented (mixed) cut becomes a plain cut with
    the same id, duration and supervisions, since training reads only the features and the text."""
    if isinstance(cut, MonoCut):
        return cut.with_custom(FEATURE_FIELD, array)
    return MonoCut(id=cut.id, start=0.0, duration=cut.duration, channel=0, supervisions=list(cut.supervisions),
                   custom={FEATURE_FIELD: array})
