"""LVM guidance (§3.2, §4.1.2): object masks per modality from Grounding DINO boxes and SAM, and their decomposition.

Only the pure decomposition is imported here (the training loss uses it); the model code lives in
the submodules (``detector``, ``sam``, ``generate``, ``importer``, ``gallery``, ``models``, ``tiny``).
"""

from occo.masks.decompose import REGIONS, decompose_masks

__all__ = ["REGIONS", "decompose_masks"]
