"""Pictures of what CIF did: where each token fired over the audio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np


def _numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def plot_cif_alignment(
    waveform,
    alphas,
    firing_positions,
    frame_rate: float,
    tokens: Optional[Sequence[str]] = None,
    path: Union[str, os.PathLike] = "cif_alignment.png",
    sample_rate: int = 16000,
    title: Optional[str] = None,
) -> Path:
    """Write a PNG: waveform, log-mel spectrogram, per-frame CIF weights with their running sum.

    `alphas` are one utterance's frame weights (padding removed), `firing_positions` the fractional
    frame indices where its tokens fired (`CIFOutput.firing_positions[b]`), drawn as vertical lines
    labelled with `tokens` when given. Uses matplotlib's Agg canvas, not pyplot's global state.
    """
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from xasr.encoders.whisper import log_mel_spectrogram, mel_filters

    waveform = _numpy(waveform).reshape(-1)
    alphas = _numpy(alphas).reshape(-1)
    fire_times = _numpy(firing_positions).reshape(-1) / frame_rate
    duration = max(len(waveform) / sample_rate, len(alphas) / frame_rate)

    figure = Figure(figsize=(max(8.0, min(40.0, 2.0 * duration)), 7), layout="constrained")
    FigureCanvasAgg(figure)
    wave_ax, mel_ax, alpha_ax = figure.subplots(3, 1, sharex=True, height_ratios=[1, 1.2, 1.2])

    wave_ax.plot(np.arange(len(waveform)) / sample_rate, waveform, linewidth=0.5, color="tab:gray")
    wave_ax.set_ylabel("waveform")
    if title:
        figure.suptitle(title)

    if len(waveform) >= 400:
        mel = log_mel_spectrogram(torch.from_numpy(waveform).float()[None], mel_filters(80, sample_rate))[0]
        mel_ax.imshow(mel.numpy(), origin="lower", aspect="auto", cmap="magma",
                      extent=(0, mel.shape[1] * 160 / sample_rate, 0, mel.shape[0]))
    mel_ax.set_ylabel("log-mel bin")

    frame_times = np.arange(len(alphas)) / frame_rate
    alpha_ax.bar(frame_times, alphas, width=1.0 / frame_rate, align="edge", color="tab:blue", label="alpha")
    alpha_ax.set_ylabel("alpha (per frame)")
    alpha_ax.set_xlabel("time (s)")
    cumulative_ax = alpha_ax.twinx()
    cumulative_ax.plot(np.append(frame_times, len(alphas) / frame_rate), np.concatenate([[0.0], np.cumsum(alphas)]),
                       color="tab:orange", label="cumulative")
    cumulative_ax.set_ylabel("cumulative", color="tab:orange")

    for i, time in enumerate(fire_times):
        for ax in (wave_ax, mel_ax, alpha_ax):
            ax.axvline(time, color="tab:red", linewidth=0.8, alpha=0.7)
        label = tokens[i] if tokens is not None and i < len(tokens) else str(i)
        wave_ax.annotate(label, (time, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 2),
                         textcoords="offset points", rotation=90, ha="center", va="bottom", fontsize=7)
    wave_ax.set_xlim(0, duration)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
