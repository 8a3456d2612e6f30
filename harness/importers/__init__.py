"""Importers of published results: other tools' benchmark files turned into run folders in the store format.

An imported run is a run like any other for ``harness report``, ``harness compare`` and ``harness.store.load``,
with two differences a reader must see: its manifest's ``source`` names the tool that measured it (the loader
surfaces it as the ``source`` column; the harness's own runs read ``harness``), and it has no samples, so its
figures are compared as ratios without a statistical test.

``timm``: the CSV files of pytorch-image-models' ``benchmark.py`` (see ``harness.importers.timm``).
"""

from __future__ import annotations

from harness.importers.names import Overrides
from harness.importers.timm import ImportedRun, import_file

#: When a harness run is held against an imported one, these case fields must be equal. Batch size is not
#: matched (published files use their own batch sizes); compile is matched only when both sides record it.
MATCH_FIELDS = ("model", "mode", "resolution", "precision", "channels_last")
MATCH_RULE = (
    "cases match on model, mode, resolution, precision and memory format (channels_last); batch size is not "
    "matched, and compile only when both sides record it"
)

FORMATS = ("timm",)

__all__ = ["FORMATS", "MATCH_FIELDS", "MATCH_RULE", "ImportedRun", "Overrides", "import_file"]
