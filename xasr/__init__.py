"""xasr: LLM-based speech recognition after X-LLM (frozen encoders, C-Former, frozen LLM).

    import xasr
    model = xasr.load_model("exp/align/model")
    for t in xasr.transcribe(model, ["a.wav", "b.flac"]):
        print(t.id, t.text, [(w.word, w.start, w.end) for w in t.words])
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy, so that `xasr --help` does not import torch
    if name == "load_model":
        from xasr.loading import load_model

        return load_model
    if name == "transcribe":
        from xasr.decode import transcribe

        return transcribe
    raise AttributeError(f"module 'xasr' has no attribute {name!r}")
