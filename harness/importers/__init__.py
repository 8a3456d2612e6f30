"""Importers of published results: other tools' benchmark files turned into run folders in the store format.

An imported run is a run like any other for ``harness report``, ``harness compare`` and ``harness.store.load``,
with two differences a reader must see: its manifest's ``source`` names the tool that measured it (the loader
surfaces it as the ``source`` column; the harness's own runs read ``harness``), and it has no samples, so its
figures are compared as ratios without a statistical test.

``timm``: the CSV files of pytorch-image-models' ``benchmark.py`` (see ``harness.importers.timm``).
``match_published`` holds measured cases against imported ones under ``MATCH_RULE`` (``harness.importers.match``).
"""

from __future__ import annotations

from harness.importers.match import MATCH_FIELDS, MATCH_RULE, match_published
from harness.importers.names import Overrides
from harness.importers.timm import ImportedRun, import_file

FORMATS = ("timm",)

__all__ = ["FORMATS", "MATCH_FIELDS", "MATCH_RULE", "ImportedRun", "Overrides", "import_file", "match_published"]
