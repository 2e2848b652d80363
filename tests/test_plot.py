"""The CIF firing plot."""

import numpy as np
import torch

from xasr.adapters import CIF
from xasr.config import CIFConfig
from xasr.plot import plot_cif_alignment


def test_plot_cif_alignment_writes_a_png(tmp_path):
    torch.manual_seed(0)
    waveform = 0.1 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000).astype(np.float32)
    frames = 50  # one second at 50 frames per second
    with torch.no_grad():
        out = CIF(CIFConfig(input_dim=8))(torch.randn(1, frames, 8), torch.tensor([frames]),
                                          target_lengths=torch.tensor([4]))
    path = plot_cif_alignment(waveform, out.alphas[0], out.firing_positions[0], frame_rate=50,
                              tokens=["one", "two", "three", "four"], path=tmp_path / "plots" / "cif.png",
                              title="u1")
    data = path.read_bytes()
    assert path == tmp_path / "plots" / "cif.png" and data.startswith(b"\x89PNG") and len(data) > 1000
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 400  # a figure, not an empty canvas
    ink = (image[..., :3] < 0.5).any(-1).mean()  # dark pixels: axes, curves, labels
    assert 0.01 < ink < 0.6
