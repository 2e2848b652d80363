"""Free Spoken Digit Dataset: `{digit}_{speaker}_{take}.wav`, takes 0-4 test and 5-49 train."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict

from xasr.data.manifests import CorpusSplit, probe_or_skip, split_from_utterances

log = logging.getLogger(__name__)

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FILE_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9]+)_(?P<take>\d+)\.wav$")
NUM_TEST_TAKES = 5  # FSDD's own convention: takes 0-4 of each digit and speaker are the test set


def prepare_fsdd(corpus_dir: Path | str) -> Dict[str, CorpusSplit]:
    """Manifests for the `train` and `test` splits of an FSDD folder (searched recursively)."""
    corpus_dir = Path(corpus_dir).resolve()  # manifests hold absolute paths: usable from any folder
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: no such directory")
    utterances: dict[str, list] = {"train": [], "test": []}
    skipped: dict[str, list[str]] = {"train": [], "test": []}
    for path in sorted(corpus_dir.rglob("*.wav")):
        match = FILE_NAME.match(path.name)
        if match is None:
            log.warning("skipping %s: not named {digit}_{speaker}_{take}.wav", path)
            continue
        split = "test" if int(match["take"]) < NUM_TEST_TAKES else "train"
        recording = probe_or_skip(path, path.stem, skipped[split])
        if recording is None:
            continue
        utterances[split].append((recording, DIGIT_WORDS[int(match["digit"])], match["speaker"], "en"))
    if not utterances["train"] and not utterances["test"]:
        raise ValueError(f"{corpus_dir}: no FSDD recordings named {{digit}}_{{speaker}}_{{take}}.wav found")
    return {split: split_from_utterances(utterances[split], skipped[split]) for split in ("train", "test")}
