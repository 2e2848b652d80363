"""Manifest containers shared by every corpus: one split = recordings + supervisions (+ cuts)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional

from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from xasr.io import atomic_path, short_error

log = logging.getLogger(__name__)


@dataclass
class CorpusSplit:
    """The manifests of one split of a corpus, as every `prepare_<corpus>()` returns them."""

    recordings: RecordingSet
    supervisions: SupervisionSet
    skipped: list[str] = field(default_factory=list)  # "path: problem" of files left out

    @property
    def cuts(self) -> CutSet:
        cuts = CutSet.from_manifests(recordings=self.recordings, supervisions=self.supervisions)
        # one utterance per recording: the cut takes the utterance's id, so hypotheses written per
        # cut match the references in the supervisions manifest
        return CutSet.from_cuts(c.with_id(c.supervisions[0].id) if len(c.supervisions) == 1 else c for c in cuts)

    def __len__(self) -> int:
        return len(self.recordings)


def split_from_utterances(
    utterances: Iterable[tuple[Recording, str, Optional[str], Optional[str]]],
    skipped: Optional[list[str]] = None,
) -> CorpusSplit:
    """Build a split from `(recording, text, speaker, language)` tuples, one supervision each."""
    recordings, supervisions = [], []
    for recording, text, speaker, language in utterances:
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=recording.id,
                recording_id=recording.id,
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=text,
                speaker=speaker,
                language=language,
            )
        )
    return CorpusSplit(
        RecordingSet.from_recordings(recordings),
        SupervisionSet.from_segments(supervisions),
        skipped=list(skipped or []),
    )


def probe_or_skip(path: Path | str, recording_id: str, skipped: list[str]) -> Optional[Recording]:
    """`probe_recording`, or None when the file is not usable audio: the problem is logged and
    appended to `skipped`, so a corpus is prepared without it and the command can name it."""
    from xasr.audio import AudioError

    try:
        return probe_recording(path, recording_id)
    except AudioError as e:
        log.warning("skipping %s", e)
        skipped.append(str(e))
        return None


def probe_recording(path: Path | str, recording_id: str) -> Recording:
    """A lhotse Recording for one file; AudioError (naming the file) if it is not usable audio."""
    from xasr.audio import AudioError, check_readable_file

    path = check_readable_file(path)
    try:
        recording = Recording.from_file(path, recording_id=recording_id)
    except Exception as e:  # lhotse tries several backends and raises whatever the last one did
        raise AudioError(path, f"not a readable audio file ({short_error(e)})") from None
    if recording.num_samples == 0:
        raise AudioError(path, "contains no audio samples")
    return recording


def manifest_path(output_dir: Path | str, prefix: str, kind: str, split: str) -> Path:
    """lhotse's naming: `{prefix}_{recordings|supervisions|cuts}_{split}.jsonl.gz`."""
    return Path(output_dir) / f"{prefix}_{kind}_{split}.jsonl.gz"


def save_manifests(splits: Dict[str, CorpusSplit], output_dir: Path | str, prefix: str) -> list[Path]:
    """Write every split's recordings, supervisions and cuts atomically; return the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if all(len(manifests) == 0 for manifests in splits.values()):
        raise ValueError(f"'{prefix}' has no usable utterances: nothing to write")
    written = []
    for split, manifests in splits.items():
        if len(manifests) == 0:
            log.warning("%s/%s has no usable utterances: no manifests written for it", prefix, split)
            continue
        for kind, manifest in (
            ("recordings", manifests.recordings),
            ("supervisions", manifests.supervisions),
            ("cuts", manifests.cuts),
        ):
            path = manifest_path(output_dir, prefix, kind, split)
            _atomic_to_file(manifest, path)
            written.append(path)
        log.info("%s/%s: %d utterances, %.1f h", prefix, split, len(manifests),
                 sum(r.duration for r in manifests.recordings) / 3600)
    return written


def _atomic_to_file(manifest, path: Path) -> None:
    """Write to a temporary file beside `path` and rename it, so a crash never leaves half a file."""
    with atomic_path(path, suffix=".jsonl.gz") as tmp:
        manifest.to_file(tmp)


def from_lhotse_recipe(manifests: Dict[str, Dict[str, object]]) -> Dict[str, CorpusSplit]:
    """Convert what a `lhotse.recipes.prepare_*` returns (split -> {recordings, supervisions})."""
    return {
        split: CorpusSplit(parts["recordings"], parts["supervisions"])
        for split, parts in manifests.items()
    }
