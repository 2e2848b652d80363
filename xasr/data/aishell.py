"""AISHELL-1 (Mandarin, 178 h) through lhotse's own download and prepare recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from lhotse.recipes import aishell

from xasr.data.manifests import CorpusSplit, from_lhotse_recipe

TRANSCRIPT = Path("data_aishell/transcript/aishell_transcript_v0.8.txt")


def prepare_aishell(corpus_dir: Path | str, download: bool = False) -> Dict[str, CorpusSplit]:
    """Manifests for train/dev/test of `corpus_dir/aishell` (downloaded there first if asked).

    lhotse's recipe removes the spaces between words, so text is scored by character (CER).
    """
    corpus_dir = Path(corpus_dir).resolve()  # manifests hold absolute paths: usable from any folder
    if download:
        aishell.download_aishell(corpus_dir)
    root = corpus_dir / "aishell" if (corpus_dir / "aishell" / TRANSCRIPT).is_file() else corpus_dir
    if not (root / TRANSCRIPT).is_file():
        raise FileNotFoundError(
            f"{root / TRANSCRIPT}: not found; pass --download or point at the folder that holds "
            "aishell/data_aishell"
        )
    return from_lhotse_recipe(aishell.prepare_aishell(root))
