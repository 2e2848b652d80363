"""LibriSpeech through lhotse's own download and prepare recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

from lhotse.recipes import librispeech

from xasr.data.manifests import CorpusSplit, from_lhotse_recipe


def prepare_librispeech(
    corpus_dir: Path | str,
    parts: Sequence[str] = ("dev-clean", "test-clean"),
    download: bool = False,
    num_jobs: int = 2,
) -> Dict[str, CorpusSplit]:
    """Manifests for the given parts of `corpus_dir/LibriSpeech` (downloaded there first if asked).

    Transcripts keep LibriSpeech's upper-case text; scoring normalises case.
    """
    corpus_dir = Path(corpus_dir).resolve()  # manifests hold absolute paths: usable from any folder
    if download:
        librispeech.download_librispeech(corpus_dir, dataset_parts=list(parts))
    root = corpus_dir / "LibriSpeech" if (corpus_dir / "LibriSpeech").is_dir() else corpus_dir
    missing = [part for part in parts if not (root / part).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root}: LibriSpeech part(s) {', '.join(missing)} not found; pass --download or "
            "point at the folder that holds LibriSpeech/"
        )
    manifests = librispeech.prepare_librispeech(root, dataset_parts=list(parts), num_jobs=num_jobs)
    return from_lhotse_recipe(manifests)
