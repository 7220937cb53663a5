"""LVM guidance (§3.2, §4.1.2): object masks per modality from Grounding DINO boxes and SAM, and their decomposition.

Only the pure decomposition is imported here (the training loss uses it). The stage lives in the
submodules: ``splits`` (its entry), ``generate`` (the resumable loop), ``models`` (loading from params),
``detector`` and ``detector_hf`` (the two Grounding DINO backends), ``sam``, ``tiny`` (random-init
models for tests), ``published`` (importing masks) and ``overlays`` (the audit gallery).
"""

from occo.masks.decompose import REGIONS, decompose_masks

__all__ = ["REGIONS", "decompose_masks"]
