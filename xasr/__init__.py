"""xasr: LLM-based speech recognition after X-LLM (frozen encoders, C-Former, frozen LLM)."""

__version__ = "0.1.0"
