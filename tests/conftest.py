from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# ../shared/data beside the repository: read where it is, never copied; tests skip without it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def write_tone(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1,
               frequency: float = 440.0, **kwargs) -> np.ndarray:
    """Write a sine tone (as every channel) and return it as (frames, channels)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    data = np.stack([tone] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, **kwargs)
    return data


def pytest_collection_modifyitems(config, items):
    """`slow` tests (real packaged weights) run only when selected with `-m slow`."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow integration test: select with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
