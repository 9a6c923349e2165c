"""The optimizer's page shows the kernel's exact subset as the code states it (one copy: ``optimizers.lines.SUBSET``)."""

from __future__ import annotations

import re
from pathlib import Path

from optimizers.lines import SUBSET

PAGE = Path(__file__).resolve().parents[1] / "docs" / "optimize.md"


def test_the_exact_subset_on_the_optimize_page_is_the_codes() -> None:
    blocks = re.findall(r"^```text\n(.*?)^```$", PAGE.read_text(), flags=re.S | re.M)
    shown = [b for b in blocks if b.startswith("Exact (departure times")]
    assert shown == [SUBSET], "docs/optimize.md: copy optimizers.lines.SUBSET into its ```text block"
