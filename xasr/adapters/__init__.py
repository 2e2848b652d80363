"""X2L adapters: encoder frames -> embeddings in the LLM's input space.

`adapter(features, feature_lengths, target_lengths=None) -> AdapterOutput(embeddings, lengths, cif)`.
"""

from xasr.adapters.cformer import AdapterOutput, CFormer, CFormerConfig, CFormerOutput
from xasr.adapters.cif import CIF, CIFConfig, CIFOutput, integrate_and_fire
from xasr.adapters.projector import FrameStackProjector, ProjectorConfig

__all__ = [
    "AdapterOutput", "CFormer", "CFormerConfig", "CFormerOutput", "CIF", "CIFConfig", "CIFOutput",
    "FrameStackProjector", "ProjectorConfig", "integrate_and_fire",
]
