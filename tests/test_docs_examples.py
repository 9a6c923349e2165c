"""Docs that run: every command example in README.md and the site's pages (docs/**/*.md) is executed.

The examples are taken from the markdown itself, so an example that breaks fails here:

- ```` ```sh ```` blocks: each `twin ...` line (with its ``\\`` continuations) runs through bash in one work
  folder shared by the whole document, in document order (a run folder one example writes, a later one reads),
  and must exit 0. The files every page of the site names are in that folder first (a reader of one page has
  the others at hand), the page's own last, so that its own version of a name wins. ``export NAME=VALUE`` lines set the environment of the lines after them.
- ```` ```python ```` blocks run in one namespace per document; a line whose comment shows a figure
  (``expr  # {"mean": 0.361, "ci95": [0.358, 0.363]}``) must give that figure to the digits shown.
- transcripts (``$ twin ...`` followed by its output, in a plain block) must print exactly that output.
- ``<!-- file: NAME -->`` right before a block writes the block to NAME first; ``<!-- file: NAME`` with the
  content inside the comment (ending ``-->``) does the same for a file the reader need not see.
- ``<!-- not run: REASON -->`` right before a block leaves it out (it needs a server, a browser, a cluster or
  long runs); ``<!-- not run "TEXT" "TEXT2": REASON -->`` leaves out only the commands containing one of the
  texts. Keep those few (``MAX_NOT_RUN``).
- Runs are kept short by the test, not by the docs: a ``twin run``, ``compare``, ``sweep`` or ``optimize`` that gives
  no ``--horizon`` gets ``--horizon "6 w"`` (what an example shows is its options and files, not a figure's precision).

Run ids in examples (``3f2a9c``, ``77b0e1``) stand for the first and second runs of the work folder's store.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent
PLACEHOLDER_RUNS = ("3f2a9c", "77b0e1")  # in the order of the store's runs (oldest first)
MAX_NOT_RUN = 8  # blocks or commands left out, all documents together: keep the list short
MIN_EXAMPLES = 30  # runnable examples in all documents together: fewer means the extraction broke
HANG = 600  # seconds one example may take: only a hang reaches it

FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARK = re.compile(r'^\s*<!--\s*(file:\s*(?P<file>\S+)|not run(?P<only>(\s+"[^"]+")*):\s*(?P<why>.*?))\s*(-->)?\s*$')


@dataclass
class Block:
    """A fenced block of a markdown file, with the markers right before it."""

    doc: str
    line: int
    lang: str
    text: str
    file: str | None = None
    not_run: list[tuple[str | None, str]] = field(default_factory=list)  # (only commands containing, reason)


@dataclass
class Doc:
    blocks: list[Block]
    hidden_files: list[tuple[int, str, str]]  # (line, name, content) of files given inside a comment


def parse(path: Path) -> Doc:
    """The fenced blocks of a markdown file and the markers (HTML comments) that precede them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    hidden: list[tuple[int, str, str]] = []
    pending_file: str | None = None
    pending_not: list[tuple[str | None, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        mark = MARK.match(line)
        fence = FENCE.match(line)
        if mark:
            if mark["file"] and not line.rstrip().endswith("-->"):  # the file's content inside the comment
                end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
                hidden.append((i + 1, mark["file"], "\n".join(lines[i + 1 : end]) + "\n"))
                i = end + 1
                continue
            if mark["file"]:
                pending_file = mark["file"]
            else:
                assert mark["why"], f"{path.name}:{i + 1}: a 'not run' marker must say why"
                texts = re.findall(r'"([^"]+)"', mark["only"] or "")
                pending_not.extend((text, mark["why"]) for text in texts or [None])
        elif fence:
            indent, lang = fence.group(1), fence.group(2)
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            body = "\n".join(ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end])
            blocks.append(Block(path.name, i + 1, lang, body + "\n", pending_file, pending_not))
            pending_file, pending_not = None, []
            i = end + 1
            continue
        elif line.strip():
            pending_file, pending_not = None, []
        i += 1
    return Doc(blocks, hidden)


def shell_commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) of each command of an ``sh`` block: continuations joined, comments kept for bash."""
    out: list[tuple[int, str]] = []
    current, start = "", 0
    for k, raw in enumerate(block.text.splitlines()):
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not current:
            start = block.line + 1 + k
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        out.append((start, current + raw))
        current = ""
    return out


def transcripts(block: Block) -> list[tuple[int, str, list[str]]]:
    """(line, command, expected output lines) of the ``$ command`` lines of a plain block."""
    out: list[tuple[int, str, list[str]]] = []
    for k, raw in enumerate(block.text.splitlines()):
        if raw.startswith("$ "):
            out.append((block.line + 1 + k, raw[2:], []))
        elif out and raw.strip():
            out[-1][2].append(raw)
    return out


def skipped(block: Block, command: str) -> str | None:
    """Why ``command`` of ``block`` is not run (None: it runs)."""
    for only, why in block.not_run:
        if only is None or only in command:
            return why
    return None


# --- running ----------------------------------------------------------------------------------------------------


class Runner:
    """Runs a document's examples in one work folder; collects every failure (all are reported at once)."""

    def __init__(self, work: Path):
        self.work = work
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(work / "home"),
                    "COLUMNS": "200", "TWIN_STORE": str(work / "twin-runs")}  # fmt: skip
        (work / "home").mkdir()
        self.namespace: dict[str, object] = {}
        self.failures: list[str] = []
        self.timings: list[tuple[float, float, str]] = []  # (wall, CPU of the command, where)
        self.ran = 0

    def placeholders(self, command: str) -> str:
        if not any(p in command for p in PLACEHOLDER_RUNS):
            return command
        from twin.store import RunStore

        store = RunStore(self.work / "twin-runs", create=False)
        ids = list(store.list(order_by="created")["run_id"])
        for placeholder, run_id in zip(PLACEHOLDER_RUNS, ids, strict=False):
            command = re.sub(rf"\b{placeholder}\b", run_id, command)
        return command

    def shell(self, where: str, command: str, expect: list[str] | None = None) -> None:
        if command.startswith("export "):
            name, _, value = command[len("export ") :].split("#")[0].strip().partition("=")
            self.env[name] = value
            return
        line = self.placeholders(command)
        start, cpu = time.monotonic(), _children_cpu()
        done = subprocess.run(["bash", "-c", line if expect is not None else shortened(line)], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=HANG)  # fmt: skip
        self.ran += 1
        self.timings.append((time.monotonic() - start, _children_cpu() - cpu, f"{where}: {command.strip()[:90]}"))
        output = (done.stdout + done.stderr).strip()
        if expect is None and done.returncode != 0:
            self.failures.append(f"{where}: `{command.strip()}` exited {done.returncode}:\n{output[-2000:]}")
        elif expect is not None:
            got = [ln.rstrip() for ln in output.splitlines()]
            if done.returncode != 2 or got != [ln.rstrip() for ln in expect]:
                self.failures.append(f"{where}: `{command}` exited {done.returncode} and printed\n{output}\n"
                                     f"where the docs show\n" + "\n".join(expect))  # fmt: skip

    def python(self, block: Block) -> None:
        tree = ast.parse(block.text)
        source = block.text.splitlines()
        old = os.getcwd()
        os.chdir(self.work)
        try:
            for statement in tree.body:
                where = f"{block.doc}:{block.line + statement.lineno}"
                code = ast.Module(body=[statement], type_ignores=[])
                try:
                    if isinstance(statement, ast.Expr):
                        value = eval(compile(ast.Expression(statement.value), where, "eval"), self.namespace)
                        self.check_figure(where, source[statement.end_lineno - 1], value)
                    else:
                        exec(compile(code, where, "exec"), self.namespace)
                except Exception as err:
                    self.failures.append(f"{where}: {ast.unparse(statement)[:200]}\n  {type(err).__name__}: {err}")
                    return
            self.ran += 1
        finally:
            os.chdir(old)

    def check_figure(self, where: str, line: str, value: object) -> None:
        """``expr  # {"mean": 0.361, "ci95": [0.358, 0.363]}``: the figure shown, to the digits shown."""
        _, hash_, comment = line.partition("  # ")
        if not hash_ or not comment.startswith("{"):
            return
        try:
            shown = json.loads(comment)
        except json.JSONDecodeError:
            return  # prose, or "..." where a figure would be
        shown_numbers = _numbers(shown)
        got_numbers = _numbers({k: value[k] for k in shown} if isinstance(value, dict) else value)  # type: ignore[index]
        for (key, text), (_, got) in zip(shown_numbers, got_numbers, strict=True):
            decimals = len(text.split(".")[1]) if "." in text else 0
            if round(float(got), decimals) != float(text):
                self.failures.append(f"{where}: the docs show {key} = {text}; the example gives {float(got):.6g}")

    def write(self, name: str, text: str) -> None:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _numbers(node: object, key: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _numbers(v, f"{key}.{k}".strip("."))]
    if isinstance(node, list | tuple):
        return [item for i, v in enumerate(node) for item in _numbers(v, f"{key}[{i}]")]
    return [(key, repr(node) if not isinstance(node, float) else json.dumps(node))]


def not_run(doc: Doc) -> list[str]:
    """One line per left-out block or command, with its reason; several texts of one marker count once."""
    seen = {(b.doc, b.line, why): only for b in doc.blocks for only, why in b.not_run}
    return [f"{doc_}:{line}: {only or 'the block'}: {why}" for (doc_, line, why), only in seen.items()]


SHORT = re.compile(r"^(\s*twin\s+(run|compare|sweep|optimize)\s)")


def shortened(command: str) -> str:
    """``twin run|compare|sweep|optimize`` with ``--horizon "6 w"`` when the command gives no horizon of its own."""
    if "--horizon" in command or not SHORT.match(command):
        return command
    code, hash_, comment = command.partition(" #")
    return f'{code.rstrip()} --horizon "6 w"' + (f"  #{comment}" if hash_ else "")


# --- the tests ----------------------------------------------------------------------------------------------------


def files(doc: Doc) -> list[tuple[str, str]]:
    """(name, content) of every file a document gives, hidden or shown, in document order."""
    return [(name, content) for _, name, content in doc.hidden_files] + [(b.file, b.text) for b in doc.blocks if b.file]


def runnable(doc: Doc) -> int:
    """How many examples of a document run (commands, transcripts, python blocks)."""
    count = 0
    for block in doc.blocks:
        if block.lang == "sh":
            count += sum(not skipped(block, c) and not c.startswith("export ") for _, c in shell_commands(block))
        elif block.lang == "python":
            count += not skipped(block, "")
        elif block.lang == "":
            count += sum(not skipped(block, c) for _, c, _ in transcripts(block))
    return count


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_every_command_example_runs(path, tmp_path):
    doc = parse(path)
    run = Runner(tmp_path)
    others = [parse(p) for p in DOCS if p != path]
    for name, content in [f for other in others for f in files(other)] + files(doc):  # every file first, as for a reader
        run.write(name, content)
    for block in doc.blocks:
        if block.lang == "sh":
            for line, command in shell_commands(block):
                if not skipped(block, command):
                    run.shell(f"{block.doc}:{line}", command)
        elif block.lang == "python" and not skipped(block, ""):
            run.python(block)
        elif block.lang == "":
            for line, command, expect in transcripts(block):
                if not skipped(block, command):
                    run.shell(f"{block.doc}:{line}", command, expect)
    for seconds, cpu, where in sorted(run.timings, reverse=True)[:8]:  # shown with -rP: where the time goes
        print(f"{seconds:6.1f} s wall {cpu:6.1f} s CPU  {where}")
    assert not run.failures, f"{len(run.failures)} example(s) of {path.name} fail:\n\n" + "\n\n".join(run.failures)
    assert run.ran == runnable(doc)


def test_the_docs_have_examples_and_each_page_of_the_nav_is_checked():
    counts = {p.relative_to(ROOT).as_posix(): runnable(parse(p)) for p in DOCS}
    assert sum(counts.values()) >= MIN_EXAMPLES, counts
    assert counts["README.md"] >= 5 and counts["docs/getting-started.md"] >= 5, counts


def test_few_examples_are_left_out_and_each_says_why():
    left_out = [item for path in DOCS for item in not_run(parse(path))]
    assert len(left_out) <= MAX_NOT_RUN, "\n".join(left_out)
    assert all(re.search(r": \S.{10,}$", item) for item in left_out), left_out


def test_the_extraction_sees_what_a_reader_sees(tmp_path):
    """Continuations, comments, markers and transcripts are read as a reader reads them."""
    md = tmp_path / "x.md"
    md.write_text(
        "<!-- file: a.yaml -->\n```yaml\nname: a\n```\n\n"
        '<!-- not run "--scheduler": needs a Dask cluster at that address -->\n'
        "```sh\ntwin run a.yaml \\\n    -r 2   # two\n# a comment\ntwin sweep a.yaml --scheduler tcp://x:1\n```\n\n"
        "<!-- file: hidden.csv\nname,x\n-->\n\n```\n$ twin run bad.yaml\nbad.yaml:1: oops\n```\n"
    )
    doc = parse(md)
    assert [(b.lang, b.file) for b in doc.blocks] == [("yaml", "a.yaml"), ("sh", None), ("", None)]
    sh = doc.blocks[1]
    assert [c for _, c in shell_commands(sh)] == ["twin run a.yaml      -r 2   # two", "twin sweep a.yaml --scheduler tcp://x:1"]
    assert [skipped(sh, c) for _, c in shell_commands(sh)] == [None, "needs a Dask cluster at that address"]
    assert doc.hidden_files == [(14, "hidden.csv", "name,x\n")]
    assert transcripts(doc.blocks[2]) == [(19, "twin run bad.yaml", ["bad.yaml:1: oops"])]


def test_an_override_that_replaces_a_group_of_fields_says_what_it_drops(tmp_path):
    """The README's old "SMED" lengthened coating's changeover and silently dropped its major clean."""
    import warnings

    from twin.models import load_spec
    from twin.spec.overrides import OverrideWarning

    with pytest.warns(OverrideWarning, match=r"drops major_clean, line_clearance") as caught:
        spec = load_spec("osd-tablet", ["stations.coating.setup.*->*=4 h"])
    assert len(caught) == 1
    coating = next(s for s in spec.stations if s.name == "coating")
    assert "major_clean" not in str(coating.setup)  # what the warning says is what happened
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one field, a distribution, a new field, a removal: nothing dropped
        kept = load_spec("osd-tablet", ["stations.compression.setup.*->*.time=1 h",
                                        "stations.coating.process_time=3 h", "stations.coating.buffer=4",
                                        "stations.coating.failures=null"])  # fmt: skip
    compression = next(s for s in kept.stations if s.name == "compression")
    assert "line_clearance" in str(compression.setup)
    done = subprocess.run([str(BIN / "twin"), "validate", "osd-tablet", "--set", "stations.coating.setup.*->*=4 h"],
                          capture_output=True, text=True, timeout=HANG, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "warning: --set stations.coating.setup.*->*=4 h replaces all of stations.coating.setup.*->* and drops "
        "major_clean, line_clearance (was {major_clean: true, line_clearance: true}); to change one field only, "
        "set it alone (e.g. stations.coating.setup.*->*.major_clean=...)"
    ]
