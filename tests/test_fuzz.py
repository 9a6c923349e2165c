"""Fuzzing the spec side: mutated built-in specs through ``twin validate`` and short ``twin run``s.

Every input must end in exit 0 or a clean refusal (exit 2, one line per problem, each naming the
file or the option), never a traceback, an internal error or a hang, and within a memory cap. Time
and memory are measured per command (``tests/fuzz_server.py``); the caps are far above what any
input takes (a fraction of a second, about 300 MB), so only a hang or a blow-up can reach them.

    TWIN_FUZZ_EXAMPLES=500 TWIN_FUZZ_REPORT=fuzz.json python -m pytest tests/test_fuzz.py

runs more (random) examples and writes the tally (inputs tried, refused, hangs, internal errors).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plant_models

CAP_SECONDS = 120  # per command; the slowest input takes a few seconds on a loaded 2-core machine
CAP_MEMORY_MB = 2048  # per command; a twin process peaks at about 300 MB
EXPLORE = int(os.environ.get("TWIN_FUZZ_EXAMPLES", "0"))
MODELS = plant_models.available()
TEXTS = {name: path.read_text(encoding="utf-8") for name, path in MODELS.items()}
DATA = {name: yaml.safe_load(text) for name, text in TEXTS.items()}
TALLY: Counter[str] = Counter({"tried": 0, "accepted": 0, "refused": 0, "hangs": 0, "internal_errors": 0})
PEAKS = {"seconds": 0.0, "maxrss_mb": 0.0}


def examples(default: int) -> Any:
    """Few fixed examples in the suite; ``TWIN_FUZZ_EXAMPLES`` random ones when exploring."""
    return settings(
        max_examples=EXPLORE or default,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


class Twin:
    """The fork server: ``twin ARGS`` in a fresh process each time, the CLI imported once."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fuzz_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def __call__(self, *argv: str, cwd: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd), "cap_s": CAP_SECONDS}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    server = Twin()
    yield server
    server.close()
    report = {**TALLY, **{f"max_{k}": round(v, 2) for k, v in PEAKS.items()}}
    print(f"\nfuzz: {json.dumps(report)}")
    if os.environ.get("TWIN_FUZZ_REPORT"):
        Path(os.environ["TWIN_FUZZ_REPORT"]).write_text(json.dumps(report, indent=2), encoding="utf-8")


PROBLEM_LINE = re.compile(r"^(error: |--set |--scenario |[^:\s][^:]*(:\d+)?: )\S")


def check(result: dict[str, Any], source: str | tuple[str, ...], what: str, kind: str = "validate") -> str:
    """The contract for one command; returns "ok" or "refused" and adds to the tally."""
    TALLY["tried"] += 1
    TALLY[f"{kind}_tried"] += 1
    PEAKS["seconds"] = max(PEAKS["seconds"], result["seconds"])
    PEAKS["maxrss_mb"] = max(PEAKS["maxrss_mb"], result["maxrss_mb"])
    stderr = result["stderr"]
    context = f"{what}\nrc={result['rc']}\nstderr:\n{stderr[-3000:]}"
    if result["timed_out"]:
        TALLY["hangs"] += 1
        pytest.fail(f"hang (killed after {CAP_SECONDS} s): {context}")
    if result["rc"] not in (0, 2) or "Traceback" in stderr or "internal error" in stderr:
        TALLY["internal_errors"] += 1
        pytest.fail(f"internal error: {context}")
    assert result["maxrss_mb"] < CAP_MEMORY_MB, f"{result['maxrss_mb']:.0f} MB: {context}"
    lines = [line for line in stderr.rstrip("\n").split("\n") if line]
    warnings = [line for line in lines if line.startswith("warning: ")]  # e.g. a --set that replaces a group
    problems = [line for line in lines if not line.startswith("warning: ")]
    if result["rc"] == 0:
        assert not problems, context
        TALLY["accepted"] += 1
        TALLY[f"{kind}_accepted"] += 1
        return "ok"
    assert problems and all(PROBLEM_LINE.match(line) for line in problems), context
    sources = (source,) if isinstance(source, str) else source
    assert all(line.startswith((*sources, "error: ", "--set ", "--scenario ")) for line in problems), context
    TALLY["warnings"] += len(warnings)
    assert result["stdout"] == "", context
    TALLY["refused"] += 1
    return "refused"


# --- mutations ---------------------------------------------------------------------------------

TOKENS = [
    "&a ", "*a", "*zz", "<<: *a", "[", "]", "{", "}", ": ", "- ", "\n  ", "\n", "\t", "'", '"', "#", "!!binary ",
    "!!python/object:os.system ", "? ", "|\n", "---\n", "...\n", "%YAML 1.1\n", "\x00", "\x07", "\ufeff", "\u202e",
    "1e308", "-1", "0", "9" * 5000, "1e-300", ".nan", ".inf", "-.inf", "2**63", "9223372036854775808", "0x7fffffff",
    "1e308 h", "100000000 w", "1e-300 h", "0000-01-01", "null", "~", "yes", "x" * 300, "[" * 100, "{a: " * 80,
]  # fmt: skip

SNIPPET = st.one_of(st.sampled_from(TOKENS), st.text(max_size=12), st.from_regex(r"[0-9eE.+-]{1,12}", fullmatch=True))


@st.composite
def mutated_text(draw: st.DrawFn) -> bytes:
    """A built-in spec's text with 1-3 edits: spans deleted, replaced, repeated, YAML tokens or bytes inserted."""
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 60)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "repeat"]))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(SNIPPET) + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(SNIPPET) + text[j:]
        else:
            text = text[:j] + text[i:j] * draw(st.integers(2, 2000)) + text[j:]
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and draw(st.booleans()):
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return raw


HOSTILE_VALUES = [
    1e308, -1e308, 1e-300, -1, 0, 2**63, 10**30, "1e308 h", "1e-300 h", "-5 min", "100000000 w", "", "x" * 300,
    "\x00", None, True, [], {}, [[[[]]]], "45 min", "2 h", 1000, 1001, 10**6 + 1, 0.5, 1.0, 1e12, 1e13,
    {"dist": "exponential", "mean": "1e-12 h"}, {"dist": "empirical", "values": [0] * 50},
    {"dist": "weibull", "shape": 1e-300, "scale": 1}, {"dist": "lognormal", "mean": 1e-100, "sd": 1e200},
    {"dist": "normal", "mean": 1e-200, "sd": 1}, {"dist": "gamma", "mean": 1e-150, "sd": 1e150},
]  # fmt: skip

HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_VALUES).map(copy.deepcopy),  # a copy: later mutations must not change the list
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)


def paths(node: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield loc
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*loc, index))


def _set(data: Any, loc: tuple[Any, ...], value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


@st.composite
def mutated_data(draw: st.DrawFn, numbers_only: bool = False) -> tuple[str, dict[str, Any]]:
    """A built-in spec's data with 1-3 fields replaced by hostile values, removed, or added."""
    name = draw(st.sampled_from(sorted(DATA)))
    data = json.loads(json.dumps(DATA[name]))
    for _ in range(draw(st.integers(1, 3))):
        locs = [loc for loc in paths(data) if loc]
        if numbers_only:
            locs = [loc for loc in locs if type(_get(data, loc)) in (int, float)]
        loc = draw(st.sampled_from(locs))
        action = "set" if numbers_only else draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if action == "set":
            if numbers_only and draw(st.booleans()):  # a plausible change, so that some runs go ahead
                old = _get(data, loc)
                _set(data, loc, old * draw(st.sampled_from([2, 3])) if isinstance(old, int) else old * 0.9)
            else:
                _set(data, loc, draw(HOSTILE))
        elif action == "delete" and isinstance(_get(data, loc[:-1]), dict):
            del _get(data, loc[:-1])[loc[-1]]
        elif isinstance(_get(data, loc[:-1]), dict):
            _get(data, loc[:-1])[draw(st.text(min_size=1, max_size=10))] = draw(HOSTILE)
    return name, data


def _get(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        data = data[part]
    return data


def dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_set(draw: st.DrawFn) -> tuple[str, str]:
    """A built-in model and one ``--set PATH=VALUE`` with a real or mangled path and a hostile value."""
    name = draw(st.sampled_from(sorted(DATA)))
    data = DATA[name]
    loc = draw(st.sampled_from([loc for loc in paths(data) if loc]))
    parts, node = [], data
    for part in loc:
        named = isinstance(node, list) and isinstance(node[part], dict) and "name" in node[part]
        parts.append(str(node[part]["name"]) if named and draw(st.booleans()) else str(part))
        node = node[part]
    path = ".".join(parts)
    path = draw(st.sampled_from([path, path, path + ".x", "-1." + path, path.replace(".", ".-1.", 1), path + "."]))
    value = draw(st.one_of(SNIPPET, HOSTILE.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())))
    return name, f"{path}={value}"


# --- the suite ---------------------------------------------------------------------------------


@examples(40)
@given(text=mutated_text())
def test_mutated_spec_text_validates_or_is_refused_cleanly(twin, tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "line.yaml").write_bytes(text)
    check(twin("validate", "line.yaml", cwd=folder), "line.yaml", f"text: {text[:3000]!r}")


@examples(40)
@given(case=mutated_data())
def test_mutated_spec_data_validates_or_is_refused_cleanly(twin, tmp_path_factory, case):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "line.yaml").write_bytes(dump(case[1]))
    check(twin("validate", "line.yaml", cwd=folder), "line.yaml", f"data of {case[0]}: {dump(case[1])[:3000]!r}")


@examples(30)
@given(case=hostile_set())
def test_hostile_overrides_validate_or_are_refused_cleanly(twin, tmp_path_factory, case):
    folder = tmp_path_factory.mktemp("fuzz")
    sources = (case[0], str(MODELS[case[0]]))
    check(twin("validate", case[0], "--set", case[1], cwd=folder), sources, f"--set {case[1]!r}")


RUN_OPTIONS = st.one_of(
    st.tuples(st.sampled_from(["1 w", "3 d", "12 h"]), st.sampled_from(["1", "2"])),  # runs that go ahead
    st.tuples(
        st.sampled_from(["1 w", "3 d", "1e308 h", "100000000 w", "1e-300 h", "0 h", "-1 w", "1 s", "12 h"]),
        st.sampled_from(["1", "2", "0", "-1", "10001", "99999999999999999999"]),
    ),
)


@examples(15)
@given(case=mutated_data(numbers_only=True), options=RUN_OPTIONS)
def test_short_runs_of_mutated_specs_finish_or_are_refused_cleanly(twin, tmp_path_factory, case, options):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "line.yaml").write_bytes(dump(case[1]))
    horizon, replications = options
    argv = ("run", "line.yaml", "--horizon", horizon, "--warmup", "0", "-r", replications, "--json", "--out", "run")
    result = twin(*argv, cwd=folder)
    outcome = check(result, "line.yaml", f"{argv} on data of {case[0]}: {dump(case[1])[:3000]!r}", "run")
    if outcome == "ok":
        assert "throughput_per_hour" in json.loads(result["stdout"])
    assert (folder / "run").is_dir() == (outcome == "ok")
    assert sorted(p.name for p in folder.iterdir() if p.name != "run") == ["line.yaml"]
