"""Tux Paint's stamps (Debian `tuxpaint-stamps-default`, GPL-2): pictures with English captions, some
with the caption spoken by a person (`NAME_desc.ogg`): data for image-conditioned ASR.

A stamp is `NAME.txt` (first line: the English caption; further lines `lang.utf8=...`) beside
`NAME.png` (or `NAME.svg`, not read here) and perhaps `NAME_desc.ogg`. Supervisions carry the
stamp's picture as `custom["image"]` (an absolute path; `xasr.data.dataset.image_of` reads it back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from lhotse import CutSet

from xasr.data.dataset import IMAGE_FIELD
from xasr.data.manifests import CorpusSplit, probe_or_skip, split_from_utterances


STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
APT_PACKAGE = "tuxpaint-stamps-default"


@dataclass(frozen=True)
class Stamp:
    id: str  # the path below the stamps dir, without suffix, "/" -> "_": animals_birds_crow
    caption: str
    image: Path
    spoken: Optional[Path]  # a person saying the caption in English


def read_stamps(stamps_dir: Path | str = STAMPS_DIR) -> list[Stamp]:
    """Every stamp with an English caption and a PNG picture, sorted by id."""
    stamps_dir = Path(stamps_dir)
    if not stamps_dir.is_dir():
        raise FileNotFoundError(f"{stamps_dir}: no such directory; install the stamps "
                                f"(sudo apt-get install {APT_PACKAGE})")
    stamps = []
    for text_file in sorted(stamps_dir.rglob("*.txt")):
        image = text_file.with_suffix(".png")
        lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = " ".join(lines[0].split()) if lines else ""
        if not caption or ".utf8=" in caption or not image.is_file():
            continue
        spoken = text_file.with_name(f"{text_file.stem}_desc.ogg")
        stamp_id = "_".join(text_file.relative_to(stamps_dir).with_suffix("").parts)
        stamps.append(Stamp(stamp_id, caption, image.resolve(), spoken.resolve() if spoken.is_file() else None))
    if not stamps:
        raise ValueError(f"{stamps_dir}: no stamps (NAME.txt with a caption beside NAME.png) found")
    return stamps


def prepare_tuxpaint(stamps_dir: Path | str = STAMPS_DIR) -> Dict[str, CorpusSplit]:
    """The real spoken captions as split "test", each supervision with its stamp's picture."""
    utterances, skipped, images = [], [], {}
    for stamp in read_stamps(stamps_dir):
        if stamp.spoken is None:
            continue
        recording = probe_or_skip(stamp.spoken, stamp.id, skipped)
        if recording is None:
            continue
        utterances.append((recording, stamp.caption, "tuxpaint", "en"))
        images[stamp.id] = str(stamp.image)
    if not utterances:
        raise ValueError(f"{stamps_dir}: no stamp has a readable spoken English caption (NAME_desc.ogg)")
    split = split_from_utterances(utterances, skipped)
    for supervision in split.supervisions:
        supervision.custom = {**(supervision.custom or {}), IMAGE_FIELD: images[supervision.recording_id]}
    return {"test": split}


def write_captions(stamps: Sequence[Stamp], path: Path) -> None:
    """`stamp_id<TAB>caption` lines, the sentences file `xasr prepare tts` reads."""
    from xasr.data.texts import write_sentences

    write_sentences([(s.id, s.caption) for s in stamps], path)


def attach_images(cuts: CutSet, stamps: Sequence[Stamp]) -> CutSet:
    """Synthetic cuts of the captions (sentence ids = stamp ids) with their stamps' pictures."""
    images = {s.id: str(s.image) for s in stamps}

    def with_image(cut):
        supervision = cut.supervisions[0]
        sentence = (supervision.custom or {}).get("sentence_id", supervision.id)
        if sentence not in images:
            raise ValueError(f"cut {cut.id}: sentence {sentence!r} is not a stamp id")
        supervision.custom = {**(supervision.custom or {}), IMAGE_FIELD: images[sentence]}
        return cut

    return CutSet.from_cuts(with_image(cut) for cut in cuts)
