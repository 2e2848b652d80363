"""From lhotse cuts to model batches, and the on-disk cache of frozen-encoder outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet
from lhotse.features.io import NumpyHdf5Writer
from tqdm import tqdm

from xasr.audio import SAMPLE_RATE
from xasr.model import Batch

log = logging.getLogger(__name__)

FEATURE_FIELD = "encoder_features"  # custom field of a cut holding its cached encoder output


def cut_text(cut) -> str:
    return " ".join(s.text for s in cut.supervisions if s.text).strip()


def cut_waveform(cut) -> np.ndarray:
    """Mono float32 audio of a cut at 16 kHz."""
    audio = cut.resample(SAMPLE_RATE).load_audio() if cut.sampling_rate != SAMPLE_RATE else cut.load_audio()
    return audio.mean(axis=0).astype(np.float32)


def pad_stack(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad arrays along their first dimension into one tensor; also return their lengths."""
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    batch = torch.zeros((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), dtype=torch.float32)
    for i, a in enumerate(arrays):
        batch[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return batch, lengths


class SpeechTextDataset(torch.utils.data.Dataset):
    """lhotse-style dataset: indexed by a CutSet (a sampler's batch), returns a `Batch`.

    Uses the cached encoder features when the cuts carry them, the audio otherwise.
    """

    def __getitem__(self, cuts: CutSet) -> Batch:
        cuts = cuts.sort_by_duration(ascending=False)
        texts = [cut_text(cut) for cut in cuts]
        ids = [cut.id for cut in cuts]
        if all(cut.has_custom(FEATURE_FIELD) for cut in cuts):
            features, lengths = pad_stack([cut.load_custom(FEATURE_FIELD) for cut in cuts])
            return Batch(ids=ids, features=features, feature_lengths=lengths, texts=texts)
        waveforms, lengths = pad_stack([cut_waveform(cut) for cut in cuts])
        return Batch(ids=ids, waveforms=waveforms, waveform_lengths=lengths, texts=texts)


@torch.no_grad()
def cache_encoder_features(encoder: torch.nn.Module, cuts: CutSet, storage_dir: Path | str,
                           batch_duration: float = 60.0, device: Optional[torch.device] = None,
                           dtype: torch.dtype = torch.float16) -> CutSet:
    """Run the frozen encoder once over `cuts`, store its outputs (HDF5, float16 by default: half the
    disk space and reading time of float32) and return the cuts with them.

    Writes `storage_dir/cuts.jsonl.gz`; when that file already exists it is returned as it is.
    """
    storage_dir = Path(storage_dir)
    manifest = storage_dir / "cuts.jsonl.gz"
    if manifest.is_file():
        log.info("encoder features already cached in %s", storage_dir)
        return CutSet.from_file(manifest)
    storage_dir.mkdir(parents=True, exist_ok=True)
    device = device or next(encoder.parameters()).device
    frame_shift = 1.0 / encoder.frame_rate
    cuts = cuts.to_eager().sort_by_duration(ascending=False)
    with_features = []
    storage = storage_dir / "features.h5"
    with NumpyHdf5Writer(storage, mode="w") as writer, tqdm(total=len(cuts), desc="encoder features") as bar:
        batch: list = []
        for i, cut in enumerate(cuts):
            batch.append(cut)
            if sum(c.duration for c in batch) >= batch_duration or i == len(cuts) - 1:
                waveforms, lengths = pad_stack([cut_waveform(c) for c in batch])
                features, feature_lengths = encoder(waveforms.to(device), lengths.to(device))
                for c, f, n in zip(batch, features.to(dtype).cpu().numpy(), feature_lengths.tolist()):
                    array = writer.store_array(c.id, f[:n], frame_shift=frame_shift, temporal_dim=0, start=c.start)
                    with_features.append(c.with_custom(FEATURE_FIELD, array))
                bar.update(len(batch))
                batch = []
    cached = CutSet.from_cuts(with_features)
    cached.to_file(storage_dir / ".cuts.tmp.jsonl.gz")
    (storage_dir / ".cuts.tmp.jsonl.gz").rename(manifest)
    return cached
