"""Batched decoding of lhotse cuts into hypothesis records, written as JSON lines as they come."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from xasr.data.dataset import SpeechTextDataset
from xasr.model import XASRModel

log = logging.getLogger(__name__)


def decode_cuts(model: XASRModel, cuts: CutSet, max_duration: float = 60.0,
                num_beams: int = 1) -> Iterator[dict]:
    """Yield `{"id", "text", "duration", ...}` per cut, batching cuts of similar length."""
    model.eval()
    device = next(model.adapter.parameters()).device
    cuts = cuts.to_eager().sort_by_duration(ascending=False)
    durations = {cut.id: cut.duration for cut in cuts}
    dataset = SpeechTextDataset()
    with tqdm(total=len(cuts), desc="decoding", unit="utt") as bar:
        for cut_batch in SimpleCutSampler(cuts, max_duration=max_duration):
            batch = dataset[cut_batch]
            batch.texts = None
            for result in model.generate(batch.to(device), num_beams=num_beams):
                result["duration"] = durations[result["id"]]
                yield result
            bar.update(len(cut_batch))


def write_hypotheses(results: Iterator[dict], path: Path | str) -> dict:
    """Write `{"id", "text"}` JSON lines (flushed per line, renamed into place at the end).

    Returns audio seconds, wall seconds and the real-time factor.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    start, audio_seconds, count = time.time(), 0.0, 0
    with open(tmp, "w", encoding="utf-8") as f, torch.inference_mode():
        for result in results:
            f.write(json.dumps({"id": result["id"], "text": result["text"]}, ensure_ascii=False) + "\n")
            f.flush()
            audio_seconds += result.get("duration", 0.0)
            count += 1
    os.replace(tmp, path)
    wall = time.time() - start
    stats = {"utterances": count, "audio_seconds": audio_seconds, "wall_seconds": wall,
             "rtf": wall / audio_seconds if audio_seconds else float("nan")}
    log.info("decoded %d utterances, %.1f s of audio in %.1f s (RTF %.3f)", count, audio_seconds, wall, stats["rtf"])
    return stats
