"""What the random lines of the exactness tests cover: per rule or flag, how many examples have it, and how many
pairs of them meet on one line. Draws the examples as the tests do (hypothesis, fixed examples) without running a
kernel:

    PYTHONPATH=. python tests/exactness_coverage.py [OLD_COPY_OF_tests/test_optimizer_exactness.py]
"""

from __future__ import annotations

import collections
import itertools
import sys
from typing import Any

from twin.spec.model import LineSpec


def features(spec: LineSpec) -> set[str]:
    """The rules and flags of one line (a station having it is enough)."""
    d = spec.model_dump(exclude_none=True, by_alias=True)
    out = {f"stations={len(d['stations'])}"}
    rel = d["release"]
    mode = rel["mode"]
    if mode == "plan":
        mode = "plan-arrivals" if rel.get("interarrival") else ("plan" if rel.get("repeat") else "plan-once")
    out.add(f"release={mode}")
    if len(d["products"]) > 1:
        out.add("two products")
    if rel.get("mix"):
        out.add("mix")
    if rel.get("wip_limit"):
        out.add("CONWIP")
    if d.get("hold_times"):
        out.add("hold time")
    for s in d["stations"]:
        if s["units"] > 1:
            out.add("several units")
        pt = s.get("process_time")
        if isinstance(pt, dict) and "dist" not in pt:
            out.add("time per product")
        for dist in ([pt] if isinstance(pt, dict) and "dist" in pt else (pt or {}).values()):
            out.add(f"dist={dist.get('dist', 'constant') if isinstance(dist, dict) else 'constant'}")
        buffer = s.get("buffer")
        out.add("buffer unlimited" if buffer is None else ("buffer 0" if buffer == 0 else "buffer 1-3"))
        if s.get("setup"):
            out.add("setup")
            if any(isinstance(c, dict) and (c.get("major_clean") or c.get("line_clearance"))
                   for c in s["setup"].values()):  # fmt: skip
                out.add("changeover clean")
        if s.get("failures"):
            out.add("failures")
            out.add("failures calendar" if s["failures"].get("basis") == "calendar" else "failures operating")
            if s["units"] > 1:
                out.add("failures on several units")
        cleaning = s.get("cleaning")
        if cleaning:
            out.add("cleaning")
            out |= {f"cleaning.{k}" for k in ("minor", "major", "dirty_hold", "clean_hold", "line_clearance")
                    if cleaning.get(k) is not None}  # fmt: skip
            out |= {f"cleaning.due.{k}" for k, v in (cleaning.get("due") or {}).items() if v is not None}
        quality = s.get("quality")
        if quality:
            y = quality.get("yield", 1.0)
            out.add("yield<1" if y < 1 else "quality yield=1")
            if quality.get("reject_probability"):
                out.add("reject")
        if s.get("rate"):
            out.add("rate-based")
            if s["rate"].get("cv"):
                out.add("rate cv>0")
    return out


def table(specs: list[LineSpec]) -> tuple[collections.Counter, set[tuple[str, str]]]:
    """(examples per feature, pairs of features met on one line)."""
    counts: collections.Counter = collections.Counter()
    pairs: set[tuple[str, str]] = set()
    for spec in specs:
        f = features(spec)
        counts.update(f)
        pairs |= set(itertools.combinations(sorted(f), 2))
    return counts, pairs


def drawn(module: Any, name: str) -> list[LineSpec]:
    """The lines a hypothesis exactness test of ``module`` draws, each structure's in turn (its kernel comparison
    replaced by a recorder)."""
    seen: list[LineSpec] = []
    test = getattr(module, name)
    saved = {k: getattr(module, k) for k in ("assert_same_departures", "assert_same_departures_shared") if hasattr(module, k)}
    for k in saved:
        setattr(module, k, lambda spec, seed, *_, **__: seen.append(spec))
    try:
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        for value in marks[0].args[1] if marks else [None]:
            test(**({marks[0].args[0]: value} if marks else {}))
    finally:
        for k, v in saved.items():
            setattr(module, k, v)
    return seen


def _module(path: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("exactness_under_count", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    import tests.conftest  # noqa: F401  (the suite's hypothesis profile: the examples a run of the tests draws)

    # usage: exactness_coverage.py [OLD_TEST_FILE]: the tests' table, and beside it the old file's (e.g. from
    # `git show main~1:tests/test_optimizer_exactness.py > /tmp/old.py`) with the pairs of features it had that the
    # tests now lack
    import tests.test_optimizer_exactness as now

    old = _module(sys.argv[1]) if len(sys.argv) > 1 else None
    for name in ("test_departures_equal_engine", "test_departures_with_batch_rules_equal_engine"):
        specs = drawn(now, name)
        counts, pairs = table(specs)
        old_specs = drawn(old, name) if old else []
        old_counts, old_pairs = table(old_specs)
        print(f"{name}: {len(specs)} examples (before: {len(old_specs)}), {len(pairs)} pairs of features on one line "
              f"(before: {len(old_pairs)}, of which now missing: {len(old_pairs - pairs)})")
        for pair in sorted(old_pairs - pairs):
            print("  missing pair:", pair)
        for key in sorted(set(counts) | set(old_counts)):
            print(f"  {key:28s} {old_counts.get(key, 0):4d} {counts.get(key, 0):4d}")
