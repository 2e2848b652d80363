"""Any folder with `transcripts.tsv`: `relative/path<TAB>speaker<TAB>text`, one utterance a line."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, NamedTuple, Optional

from xasr.io import read_lines
from xasr.data.manifests import CorpusSplit, probe_or_skip, split_from_utterances


TRANSCRIPTS = "transcripts.tsv"


class TsvRow(NamedTuple):
    utt_id: str
    path: Path
    speaker: str
    text: str


def utterance_id(relative_path: str) -> str:
    """Utterance ids are the audio file's stem (what `xasr score` also uses for a tsv reference)."""
    return Path(relative_path).stem


def read_transcripts(tsv_path: Path | str) -> Iterator[TsvRow]:
    """Parse a transcripts.tsv; paths are relative to its folder. Raises ValueError on bad lines."""
    tsv_path = Path(tsv_path)
    if not tsv_path.is_file():
        raise FileNotFoundError(f"{tsv_path}: no such file (expected path<TAB>speaker<TAB>text lines)")
    seen: dict[str, int] = {}
    for line_number, line in read_lines(tsv_path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(
                f"{tsv_path}:{line_number}: expected 3 tab-separated fields "
                f"(path, speaker, text), found {len(fields)}"
            )
        relative_path, speaker, text = fields
        utt_id = utterance_id(relative_path)
        if utt_id in seen:
            raise ValueError(
                f"{tsv_path}:{line_number}: utterance id '{utt_id}' repeats line {seen[utt_id]}; "
                "audio file names must be unique"
            )
        seen[utt_id] = line_number
        yield TsvRow(utt_id, tsv_path.parent / relative_path, speaker, " ".join(text.split()))


def prepare_tsv(
    corpus_dir: Path | str, split: str = "all", language: Optional[str] = None
) -> Dict[str, CorpusSplit]:
    """Manifests for a folder with transcripts.tsv; unreadable audio files are skipped and listed."""
    corpus_dir = Path(corpus_dir).resolve()  # manifests hold absolute paths: usable from any folder
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"{corpus_dir}: no such directory")
    utterances, skipped = [], []
    for row in read_transcripts(corpus_dir / TRANSCRIPTS):
        recording = probe_or_skip(row.path, row.utt_id, skipped)
        if recording is None:
            continue
        utterances.append((recording, row.text, row.speaker, language))
    if not utterances and not skipped:
        raise ValueError(f"{corpus_dir / TRANSCRIPTS}: no utterances listed")
    return {split: split_from_utterances(utterances, skipped)}
