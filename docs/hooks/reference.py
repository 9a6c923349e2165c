"""MkDocs hook: the reference pages, generated from the code at every build (one copy of every fact).

- ``reference/spec.md``: every spec field, from the JSON Schema (``twin schema``, plug-in blocks included);
- ``reference/cli.md``: every command, argument and option, from the typer commands (plug-ins included);
- ``reference/event-log.md``: the event table, events, states and metadata, from ``twin.eventlog``;
- ``reference/kpis.md``: KPI definitions from the ``twin.kpis`` modules, the summary's fields from its
  TypedDicts (``twin.kpis.summary``), and a JSON example from a real run;
- ``<!-- generated: NAME -->`` in a hand-written page is replaced by a generated table (``MARKERS``).

``python docs/hooks/reference.py OUT_DIR`` writes the same pages as files (to read them without MkDocs).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the repository's own code, whichever copy mkdocs was installed with
    sys.path.insert(0, str(ROOT))


# --- text helpers ---------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rst(text: str) -> str:
    """A docstring as Markdown: ``code`` -> `code`, doctest lines -> a python block, simple tables -> tables."""
    out: list[str] = []
    lines = inspect.cleandoc(text).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^=+(\s+=+)+\s*$", line):  # an RST simple table: ===, header, ===, rows, ===
            end = next(j for j in range(i + 3, len(lines)) if re.match(r"^=+(\s+=+)+\s*$", lines[j]))
            starts = [m.start() for m in re.finditer(r"=+", line)]
            rows: list[list[str]] = []
            for row in lines[i + 3 : end]:
                cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
                if cells[0]:
                    rows.append(cells)
                else:  # a continuation of the previous row's last cell
                    rows[-1][-1] += " " + cells[-1]
            header = [c.strip() for c in (lines[i + 1][a:b] for a, b in zip(starts, [*starts[1:], None], strict=True))]
            out.append(_table(header, [[_code(c) for c in r] for r in rows]))
            i = end + 1
            continue
        if line.lstrip().startswith((">>>", "...")):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].strip()[4:])
                i += 1
            out += ["```python", *block, "```"]
            continue
        out.append(_code(line))
        i += 1
    return "\n".join(out) + "\n"


def _code(text: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", text)


# --- spec fields from the JSON Schema ------------------------------------------------------------------


def spec_page() -> str:
    """Every field of a line spec, one table per object, from ``twin schema``."""
    from twin.spec.extensions import with_extension_schemas
    from twin.spec.model import LineSpec

    schema = with_extension_schemas(LineSpec.model_json_schema())
    defs = schema.get("$defs", {})
    order: list[str] = []

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in order:
                    order.append(name)
                    refs(defs.get(name, {}))
            for value in node.values():
                refs(value)
        elif isinstance(node, list):
            for value in node:
                refs(value)

    refs(schema["properties"])
    parts = [
        "# Spec fields\n",
        "Generated from the spec's JSON Schema (`twin schema`, which editors can use to check YAML as you "
        "type), so it is always the schema this version reads; plug-in blocks come from the installed "
        "plug-ins (`twin.spec_extensions`). Durations are a bare number in the spec's `time_unit` or a text "
        "with its unit (`45 min`, `2 h`, `3 d`); names are letters, digits, `_`, `+` and `-`. Unknown fields "
        "are errors. [The line spec](../spec.md) explains how the fields work together.\n",
        "## LineSpec (top level)\n",
        _object_table(schema, defs),
    ]
    for block, node in schema["properties"]["extensions"].get("properties", {}).items():
        parts.append(f"## extensions.{block} ({node.get('title', block)})\n")
        parts.append(_cell(node.get("description", "")) + " A plug-in block: validated by its plug-in, not part of "
                     "`spec_hash`.\n")  # fmt: skip
        parts.append(_object_table(node, defs))
    for name in order:
        node = defs[name]
        if "properties" not in node:
            continue
        parts.append(f"## {name}\n")
        if node.get("description"):
            parts.append(_cell(node["description"]) + "\n")
        parts.append(_object_table(node, defs))
    return "\n".join(parts)


def _object_table(node: dict[str, Any], defs: dict[str, Any]) -> str:
    required = set(node.get("required", ()))
    rows = []
    for name, prop in node["properties"].items():
        default = "required" if name in required else (json.dumps(_set(prop["default"])) if "default" in prop else "")
        meaning = prop.get("description") or _ref_description(prop, defs)
        tag = prop.get("const", prop["enum"][0] if len(prop.get("enum", ())) == 1 else None)
        if not meaning and tag is not None:  # a union's tag, such as `dist: weibull`
            meaning = f"`{name}: {tag}` selects this kind"
        rows.append([f"`{name}`", _type(prop, defs), f"`{default}`" if default not in ("", "required") else default,
                     meaning])  # fmt: skip
    return _table(["field", "type", "default", "meaning"], rows)


def _set(value: Any) -> Any:
    """A default without its unset parts: ``{"mode": "saturated", "plan": null}`` -> ``{"mode": "saturated"}``."""
    if isinstance(value, dict):
        return {k: _set(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_set(v) for v in value]
    return value


def _ref_description(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    for node in [prop, *prop.get("anyOf", []), *prop.get("allOf", [])]:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if ref:
            return (defs.get(ref.rsplit("/", 1)[-1], {}).get("description") or "").split("\n")[0]
    return ""


def _type(node: Any, defs: dict[str, Any]) -> str:
    if not isinstance(node, dict) or not node:
        return "any"
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "properties" in target:
            return f"[{name}](#{name.lower()})"
        return _type({k: v for k, v in target.items() if k not in ("title", "description")}, defs) or name
    for key in ("anyOf", "oneOf"):
        if key in node:
            kinds = [_type(option, defs) for option in node[key] if option.get("type") != "null"]
            nullable = any(option.get("type") == "null" for option in node[key])
            text = " or ".join(dict.fromkeys(kinds))
            return text + (" or null" if nullable and text else "")
    if "allOf" in node and len(node["allOf"]) == 1:
        return _type(node["allOf"][0], defs)
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        if "prefixItems" in node:
            return "[" + ", ".join(_type(i, defs) for i in node["prefixItems"]) + "]"
        return f"list of {_type(node.get('items', {}), defs)}"
    if kind == "object":
        values = node.get("additionalProperties") or next(iter(node.get("patternProperties", {}).values()), None)
        if isinstance(values, dict):
            return f"map of {_type(values, defs)}"
        return "map"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            bounds.append(f"{sign} {node[key]:g}" if isinstance(node[key], float) else f"{sign} {node[key]}")
    names = {"string": "text", "number": "number", "integer": "integer", "boolean": "bool"}
    return " ".join([names.get(kind, kind or "any"), *bounds])


# --- the CLI from its commands ----------------------------------------------------------------------


def cli_page() -> str:
    """Every ``twin`` command with its usage, help, arguments and options (plug-in commands included)."""
    from twin.cli.app import build_app
    from twin.cli.lazy import lazy_group

    group = lazy_group(build_app())  # typer's own click: its classes are read by duck typing
    parts = [
        "# CLI reference\n",
        "Generated from the commands themselves (`twin COMMAND --help` prints the same). Bad input exits with "
        "code 2 and one line per problem; [The CLI](../cli.md) shows them at work.\n",
    ]
    with group.context_class(group, info_name="twin") as ctx:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is not None and not command.hidden:
                parts.append(_command(command, ctx, ["twin", name]))
    return "\n".join(parts)


def _command(command: Any, parent: Any, path: list[str], level: int = 2) -> str:
    ctx = command.context_class(command, info_name=path[-1], parent=parent)
    pieces = [re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), p) for p in command.collect_usage_pieces(ctx)]
    usage = " ".join([*path, *pieces])
    text = inspect.cleandoc(command.help or "")
    parts = [f"{'#' * level} {' '.join(path[1:])}\n", f"```\n{usage}\n```\n", text + "\n" if text else ""]
    rows = []
    for param in command.params:  # as `--help` shows them: names with metavar, help with default
        record = param.get_help_record(ctx) if not getattr(param, "hidden", False) else None
        if record is not None and param.name != "help":
            rows.append([f"`{record[0]}`", record[1]])
    if rows:
        parts.append(_table(["argument / option", "meaning"], rows))
    if hasattr(command, "list_commands"):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is not None and not child.hidden:
                parts.append(_command(child, ctx, [*path, sub], min(level + 1, 4)))
    return "\n".join(p for p in parts if p)


# --- the event log from twin.eventlog -------------------------------------------------------------------


def event_log_page() -> str:
    """The event table's schema, its events, states and metadata, from ``twin.eventlog``."""
    from dataclasses import MISSING, fields

    from twin import eventlog
    from twin.engine.rules.registry import RULES

    meta_rows = [
        [f"`{f.name}`", getattr(f.type, "__name__", str(f.type)), "" if f.default is MISSING else f"`{f.default!r}`"]
        for f in fields(eventlog.LogMeta)
    ]
    return "\n".join([
        "# Event log\n",
        "Generated from `twin.eventlog` (the schema lives in its docstring and tuples); every KPI is a pure "
        "function of this table ([KPIs](kpis.md)). On disk it is Parquet with the metadata below in its "
        f"schema (schema version {eventlog.SCHEMA_VERSION}).\n",
        _rst(_demote(eventlog.__doc__ or "")),
        "## Events\n",
        ", ".join(f"`{e}`" for e in eventlog.EVENTS) + "\n",
        "Events that only a batch rule writes, and the spec fields that turn the rule on "
        "(`twin.engine.rules.registry.RULES`; [GMP batch rules](../batch-rules.md)):\n",
        _table(["rule", "spec fields", "events it writes"], [
            [rule.label, ", ".join(f"`{f}`" for f in rule.fields), ", ".join(f"`{e}`" for e in rule.events) or "none"]
            for rule in RULES.values()
        ]),
        "## Equipment states\n",
        "ISA-95/PackML vocabulary: " + ", ".join(f"`{s}`" for s in eventlog.STATES) + ".\n",
        _table(["set", "states", "used by"], [
            ["active", ", ".join(sorted(eventlog.ACTIVE_STATES)), "bottlenecks (active-period method)"],
            ["planned down", ", ".join(sorted(eventlog.PLANNED_DOWN_STATES)), "OEE: left out of planned busy time"],
            ["quality loss events", ", ".join(eventlog.QUALITY_LOSS_EVENTS), "OEE quality, lost units"],
        ]),
        "## Metadata (`LogMeta`)\n",
        _cell(eventlog.LogMeta.__doc__ or "") + "\n",
        _table(["field", "type", "default"], meta_rows),
    ])


# --- KPIs from twin.kpis ----------------------------------------------------------------------------------


def kpi_page() -> str:
    """KPI definitions (the modules' docstrings), the summary's fields (its TypedDicts) and a real example."""
    from twin.kpis import bottleneck, flow, quality, report, states
    from twin.kpis.line import LINE_KPIS
    from twin.kpis.summary import field_rows

    line_rows = [[f"`{'.'.join(k.path)}`", k.label, k.unit, "higher" if k.higher_is_better else "lower",
                  "yes" if k.stored else ""] for k in LINE_KPIS]  # fmt: skip
    return "\n".join([
        "# KPI reference\n",
        "Generated from `twin.kpis`: the definitions are the modules' own documentation, the fields those of "
        "the typed summary (`twin.kpis.summary.KpiSummary`), and the example the output of a real run made "
        "while these pages were built.\n",
        "## How KPIs are computed\n",
        _rst(_demote(report.__doc__ or "")),
        "### Flow\n", _rst(flow.__doc__ or ""),
        "### Equipment states and OEE\n", _rst(states.__doc__ or ""),
        "### Line OEE\n", _rst(report.line_oee.__doc__ or ""),
        "### Quality and release\n", _rst(quality.__doc__ or ""),
        "### Bottlenecks\n", _rst(bottleneck.__doc__ or ""),
        "## The line KPIs of the tables\n",
        "One list (`twin.kpis.line.LINE_KPIS`) that the `run`, `compare` and `runs diff` tables, the what-if "
        "deltas and the run store's catalog read:\n",
        _table(["summary field", "label", "unit", "better", "in the store's catalog"], line_rows),
        "## Summary fields\n",
        "`KpiReport.summary`, printed by `twin run --json`. Every `{mean, ci95}` is a mean over the "
        "replications and its 95% Student-t interval, cut at 0 (and at 1 for shares); `NAME` stands for a "
        "station name.\n",
        _table(["field", "type", "meaning"], [[f"`{p}`", t, m] for p, t, m in field_rows()]),
        "## Example\n",
        "`twin run` of a two-station line (`horizon: 200 h`, `warmup: 20 h`, 2 replications, seed 1), "
        "`--json`:\n",
        "```json\n" + json.dumps(_example_summary(), indent=2) + "\n```\n",
    ])  # fmt: skip


def _demote(doc: str) -> str:
    """A docstring minus its first line (the page has its own title)."""
    return textwrap.dedent("\n".join(inspect.cleandoc(doc).splitlines()[1:])).strip() + "\n"


def _example_summary() -> Any:
    from twin.experiment import run
    from twin.spec.model import LineSpec

    spec = LineSpec.from_dict({
        "name": "two-station", "horizon": "200 h", "warmup": "20 h",
        "stations": [{"name": "m1", "process_time": {"dist": "exponential", "mean": "1 h"}},
                     {"name": "m2", "process_time": "45 min", "buffer": 2}],
    })  # fmt: skip
    summary = run(spec, replications=2, seed=1).kpis.summary
    return json.loads(json.dumps(summary), parse_float=lambda x: round(float(x), 4))


# --- tables inside hand-written pages -------------------------------------------------------------------


def dashboard_pages() -> str:
    """The dashboard's pages: URL, nav-bar title and what each shows (the page modules' first lines)."""
    from importlib import import_module

    from dashboards.pages import PAGE_MODULES, load_pages

    def summary(module: str) -> str:  # the docstring's first paragraph, without its "Title: " lead
        text = " ".join(inspect.cleandoc(import_module(module).__doc__ or "").split("\n\n")[0].split())
        return _code(text.split(": ", 1)[-1])

    about = {import_module(m).PAGE.path: summary(m) for m in PAGE_MODULES}
    rows = [[f"[`{p.path}`](http://127.0.0.1:8050{p.path})", p.title, about[p.path]] for p in load_pages()]
    return _table(["URL", "page", "what it shows"], rows)


PAGES: dict[str, Callable[[], str]] = {
    "reference/spec.md": spec_page,
    "reference/cli.md": cli_page,
    "reference/event-log.md": event_log_page,
    "reference/kpis.md": kpi_page,
}
MARKERS: dict[str, Callable[[], str]] = {"dashboard-pages": dashboard_pages}
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)
MORE = "More"  # the nav section of pages that mkdocs.yml does not list (see docs/contributing.md)


# --- MkDocs events -----------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    """Pages under docs/ that the nav does not list go under "More": a page added on a branch builds and shows."""
    listed: set[str] = set()

    def walk(items: Any) -> None:
        for item in items or ():
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                walk(value)
            elif isinstance(value, str):
                listed.add(value)

    walk(config["nav"])
    docs = Path(config["docs_dir"])
    extra = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md")
                   if p.relative_to(docs).as_posix() not in listed and not p.name.startswith("_"))  # fmt: skip
    if extra and config["nav"] is not None:
        config["nav"].append({MORE: extra})
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the site."""
    from mkdocs.structure.files import File

    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` line by its table."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in MARKERS:
            raise ValueError(f"{page.file.src_path}: no generator for '<!-- generated: {name} -->'")
        return MARKERS[name]()

    return MARKER.sub(fill, markdown)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "site-reference")
    for path, make in PAGES.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(make(), encoding="utf-8")
        print(out / path)
