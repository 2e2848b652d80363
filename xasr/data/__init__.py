"""Corpus preparation (one `prepare_<corpus>()` each) and lhotse manifest helpers."""

from xasr.data.manifests import CorpusSplit, save_manifests, split_from_utterances

__all__ = ["CorpusSplit", "save_manifests", "split_from_utterances"]
