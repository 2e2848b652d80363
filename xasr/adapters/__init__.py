"""X2L adapters: encoder outputs -> embeddings in the LLM's input space.

Speech: `adapter(features, feature_lengths, target_lengths=None) -> AdapterOutput(embeddings, lengths, cif)`.
Images and video: `QFormer(patch_features, frame_mask=None) -> AdapterOutput(embeddings, lengths)`.
"""

from xasr.adapters.cformer import AdapterOutput, CFormer, CFormerOutput
from xasr.adapters.cif import CIF, CIFOutput, integrate_and_fire
from xasr.adapters.projector import FrameStackProjector
from xasr.adapters.qformer import QFormer
from xasr.adapters.speller import TokenSpeller, token_spellings
from xasr.config import CFormerConfig, CIFConfig, ProjectorConfig, QFormerConfig

__all__ = [
    "AdapterOutput", "CFormer", "CFormerConfig", "CFormerOutput", "CIF", "CIFConfig", "CIFOutput",
    "FrameStackProjector", "ProjectorConfig", "QFormer", "QFormerConfig", "TokenSpeller", "integrate_and_fire",
    "token_spellings",
]
