"""What-if: edit the line in a form, validated exactly as the CLI validates ``--set`` overrides; a
valid what-if runs as a background job (progress bar) and is saved to the run store.

Bad values are shown next to their field and nothing reaches the engine. The form starts from the
selected run's spec (its overrides included), or from the optimizer's best design ("open as what-if").
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboards import layout
from dashboards.dist_editor import FAMILIES, SLOTS, UNITS, compose, decompose
from dashboards.formatting import ci_text, rate_unit
from dashboards.pages import Page
from dashboards.whatif_form import (
    STATION_COLUMNS,
    changed_overrides,
    field_of,
    plan_override,
    plan_rows,
    station_fields,
)
from twin.durations import to_hours
from twin.errors import SpecError
from twin.experiment import with_overrides

SETTINGS = (("scenario", "Scenario name"), ("replications", "Replications"), ("horizon", "Horizon"), ("seed", "Seed"))
MAX_REPLICATIONS = 50


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "What-if",
        html.Div(id="whatif-job"),  # the request's store is put here when a what-if is valid (see ``validate``)
        html.Div(id="whatif-prefill-note"),
        html.Div(id="whatif-form"),
        layout.card(
            "Run",
            html.Div(id="whatif-general"),
            html.Div(
                [
                    html.Button("Run what-if", id="whatif-run", n_clicks=0),
                    html.Span(id="whatif-progress-label", className="muted"),
                ],
                className="controls",
            ),
            html.Progress(id="whatif-progress", value="0", max="100", className="progress"),
            html.Div(id="whatif-result"),
        ),
        subtitle="Change units, buffers, times, failures, campaigns or cleaning rules; blank a field to "
        "remove it. Durations take units (45 min, 2 h, 3 d); distributions are YAML ({dist: exponential, mean: 2 h}) "
        "or built in the distribution editor.",
    )


def _input(key: str, text: str, **kwargs: Any) -> html.Div:
    return html.Div(
        [
            dcc.Input(id={"type": "wf-in", "key": key}, value=text, type="text", debounce=True, className="", **kwargs),
            html.Div(id={"type": "wf-err", "key": key}, className="field-error"),
        ]
    )


def form(spec: Any, base: dict[str, Any], prefill: dict[str, str]) -> list[Any]:
    rows = station_fields(spec)
    head = [html.Div("station", className="head")] + [html.Div(h, className="head") for _, h in STATION_COLUMNS]
    grid = list(head)
    for row in rows:
        grid.append(html.Div(row[0].key.split(".")[1], className="mono"))
        for f in row:
            grid.append(_input(f.key, prefill.get(f.key, f.text), placeholder="–"))
    products = [p.name for p in spec.products]
    plan = []
    for i, (product, batches) in enumerate(plan_rows(spec)):
        plan += [
            dcc.Dropdown(
                id={"type": "wf-plan", "key": f"plan.{i}"},
                options=products,
                value=product or None,
                placeholder="(no campaign)",
                className="plan-product",
            ),
            _input(f"plan.{i}.batches", batches, placeholder="batches"),
        ]
    settings = [html.Label([label, _input(f"setting.{key}", str(base.get(key, "")))]) for key, label in SETTINGS]
    mode = spec.release.mode
    plan_card = layout.card(
        "Campaigns (release plan)",
        html.Div(
            [html.Div("product", className="head"), html.Div("batches", className="head"), *plan], className="plan-grid"
        )
        if mode == "plan"
        else html.P(f"This line releases batches in {mode} mode: no plan.", className="muted"),
    )
    return [
        layout.card("Settings", html.Div(settings, className="settings"), help=f"base: {base['label']}"),
        distribution_editor(rows),
        layout.card(
            "Stations",
            html.Div(grid, className="form-grid"),
            help="units, buffer places, process time or rate, failures, cleaning",
        ),
        plan_card,
    ]


DIST_COLUMNS = ("time", "mtbf", "mttr", "minor", "major")  # STATION_COLUMNS whose fields are distributions


def distribution_editor(rows: list[list[Any]]) -> html.Section:
    """Pick a field, a family and its parameters with units; "Put into the field" writes the field's text."""
    columns = [attr for attr, _ in STATION_COLUMNS]
    fields = [
        f for row in rows for attr, f in zip(columns, row, strict=True)
        if attr in DIST_COLUMNS and not f.key.endswith("units_per_hour")
    ]  # fmt: skip
    slots = [
        html.Div(
            [
                html.Span(id={"type": "wf-dist-name", "i": i}, className="dist-name"),
                dcc.Input(id={"type": "wf-dist-value", "i": i}, type="text", debounce=False, className="dist-value"),
                dcc.Dropdown(
                    id={"type": "wf-dist-unit", "i": i},
                    options=list(UNITS),
                    value="h",
                    clearable=False,
                    className="small-dropdown",
                ),
            ],
            id={"type": "wf-dist-slot", "i": i},
            className="dist-slot",
        )
        for i in range(SLOTS)
    ]
    return layout.card(
        "Distribution editor",
        html.Div(
            [
                html.Label(
                    [
                        "Field",
                        dcc.Dropdown(
                            id="wf-dist-field",
                            options=[{"label": f.label, "value": f.key} for f in fields],
                            placeholder="pick a time of a station…",
                            className="wide-dropdown",
                        ),
                    ]
                ),
                html.Label(
                    [
                        "Family",
                        dcc.Dropdown(
                            id="wf-dist-family",
                            options=list(FAMILIES),
                            value="constant",
                            clearable=False,
                            className="small-dropdown",
                        ),
                    ]
                ),
                *slots,
            ],
            className="controls",
        ),
        html.Div(
            [
                html.Code(id="wf-dist-preview"),
                html.Button("Put into the field", id="wf-dist-apply", className="button"),
            ],
            className="controls",
        ),
        help="a family and its parameters with units; validated as the field's text is",
    )


def _base(ctx: Any, run_id: str) -> tuple[Any, dict[str, Any]]:
    view = ctx.cache.view(run_id)
    info = view.info
    scenario = f"what-if {time.strftime('%H:%M:%S')}"
    horizon = info.get("horizon")
    base = {
        "scenario": scenario,
        "replications": info.get("replications", 5),
        "seed": info.get("seed", 1),
        "horizon": f"{horizon:g} h" if horizon else "",
        "label": f"{info.get('line')} · {info.get('scenario')} · {run_id[:8]}",
    }
    return view.spec, base


def check_settings(values: dict[str, str], spec: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the settings; return them and the errors by setting key."""
    errors, out = {}, {}
    name = (values.get("scenario") or "").strip()
    if not name or len(name) > 80:
        errors["scenario"] = "give the scenario a name (at most 80 characters)"
    out["scenario"] = name
    for key, low, high in (("replications", 1, MAX_REPLICATIONS), ("seed", 0, 2**31 - 1)):
        text = (values.get(key) or "").strip()
        if not text.isdigit() or not low <= int(text) <= high:
            errors[key] = f"a whole number from {low} to {high}"
        else:
            out[key] = int(text)
    try:
        out["horizon"] = to_hours(values.get("horizon") or "", spec.time_unit)
        if out["horizon"] <= spec.warmup_hours:
            errors["horizon"] = f"must be longer than the warm-up ({spec.warmup_hours:g} h)"
    except (ValueError, TypeError) as err:
        errors["horizon"] = f"a duration such as 8 w or 1000 h ({err})"
    return out, errors


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("whatif-form", "children"),
        Output("whatif-prefill-note", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("whatif-form", "id"),
        State(layout.WHATIF_PREFILL, "data"),
    )
    def build(run_id: str | None, _: str, prefill: dict | None) -> tuple:
        if not run_id:
            return layout.alert("Pick a run to start from.", kind="info"), None
        spec, base = _base(ctx, run_id)
        note = None
        values: dict[str, str] = {}
        if prefill and prefill.get("line") == spec.name:
            values = {k: v for k, v in prefill.get("values", {}).items()}
            changes = ", ".join(f"{k}={v}" for k, v in values.items())
            base["scenario"] = prefill.get("scenario") or base["scenario"]
            note = layout.alert(f"Prefilled from {prefill.get('source', 'elsewhere')}: {changes}.", kind="info")
        return form(spec, base, values), note

    @app.callback(
        Output("wf-dist-family", "value"),
        Output({"type": "wf-dist-value", "i": ALL}, "value"),
        Output({"type": "wf-dist-unit", "i": ALL}, "value"),
        Input("wf-dist-field", "value"),
        State({"type": "wf-in", "key": ALL}, "value"),
        State({"type": "wf-in", "key": ALL}, "id"),
        prevent_initial_call=True,
    )
    def load_field(key: str | None, values: list, ids: list) -> tuple:
        """The picked field's text as a family and parameter values with units."""
        texts = {i["key"]: v for i, v in zip(ids, values, strict=True)}
        if not key or key not in texts:
            return no_update, [no_update] * SLOTS, [no_update] * SLOTS
        family, params = decompose(texts[key] or "")
        slots = [params.get(p.name, ("", "h")) for p in FAMILIES[family]]
        slots += [("", "h")] * (SLOTS - len(slots))
        return family, [v for v, _ in slots[:SLOTS]], [u or "h" for _, u in slots[:SLOTS]]

    @app.callback(
        Output({"type": "wf-dist-name", "i": ALL}, "children"),
        Output({"type": "wf-dist-slot", "i": ALL}, "style"),
        Output({"type": "wf-dist-unit", "i": ALL}, "style"),
        Input("wf-dist-family", "value"),
    )
    def show_params(family: str | None) -> tuple:
        """One field per parameter of the family, a unit picker where the parameter is a duration."""
        params = FAMILIES.get(family or "constant", ())
        names = [p.name + (" (comma-separated durations)" if p.kind == "list" else "") for p in params]
        names += [""] * (SLOTS - len(names))
        shown = [{} if i < len(params) else {"display": "none"} for i in range(SLOTS)]
        units = [{} if i < len(params) and params[i].kind == "duration" else {"display": "none"} for i in range(SLOTS)]
        return names, shown, units

    @app.callback(
        Output("wf-dist-preview", "children"),
        Input("wf-dist-family", "value"),
        Input({"type": "wf-dist-value", "i": ALL}, "value"),
        Input({"type": "wf-dist-unit", "i": ALL}, "value"),
    )
    def preview(family: str | None, values: list, units: list) -> str:
        params = FAMILIES.get(family or "constant", ())
        return compose(family or "constant", {p.name: (values[i], units[i]) for i, p in enumerate(params)})

    @app.callback(
        Output({"type": "wf-in", "key": ALL}, "value"),
        Input("wf-dist-apply", "n_clicks"),
        State("wf-dist-field", "value"),
        State("wf-dist-preview", "children"),
        State({"type": "wf-in", "key": ALL}, "id"),
        prevent_initial_call=True,
    )
    def apply(_n: int, key: str | None, text: str | None, ids: list) -> list:
        """The composed text into the picked field (validated with the rest when the what-if runs)."""
        return [text if key and i["key"] == key else no_update for i in ids]

    @app.callback(
        Output({"type": "wf-err", "key": ALL}, "children"),
        Output({"type": "wf-in", "key": ALL}, "className"),
        Output("whatif-general", "children"),
        Output("whatif-job", "children"),
        Input("whatif-run", "n_clicks"),
        State({"type": "wf-in", "key": ALL}, "value"),
        State({"type": "wf-in", "key": ALL}, "id"),
        State({"type": "wf-err", "key": ALL}, "id"),
        State({"type": "wf-plan", "key": ALL}, "value"),
        State(layout.RUN_PICKER, "value"),
        prevent_initial_call=True,
    )
    def validate(clicks: int, values: list, ids: list, err_ids: list, products: list, run_id: str | None) -> tuple:
        keys = [i["key"] for i in ids]
        submitted = dict(zip(keys, values, strict=True))
        spec, _ = _base(ctx, run_id)
        settings, errors = check_settings(
            {k.split(".", 1)[1]: v for k, v in submitted.items() if k.startswith("setting.")}, spec
        )
        errors = {f"setting.{k}": v for k, v in errors.items()}
        fields = [f for row in station_fields(spec) for f in row]
        overrides = changed_overrides(fields, submitted)
        plan = (
            plan_override(
                [(p, submitted.get(f"plan.{i}.batches")) for i, p in enumerate(products)], plan_rows(spec, spare=0)
            )
            if products
            else None
        )
        if plan:
            overrides.append(plan)
        general = []
        try:
            with_overrides(spec, overrides, source="what-if form")
        except SpecError as err:
            locs = {f.loc: f.key for f in fields}
            locs.update({f"release.plan[{i}]": f"plan.{i}.batches" for i in range(len(products))})
            for problem in err.problems:
                hit = field_of(problem.path, list(locs))
                if hit is None:
                    general.append(html.Li(f"{problem.path or 'line'}: {problem.message}"))
                else:
                    key = locs[hit]
                    errors[key] = (errors.get(key, "") + "; " if key in errors else "") + problem.message
        out_errors = [errors.get(i["key"], "") for i in err_ids]
        classes = ["invalid" if k in errors else "" for k in keys]
        if errors or general:
            box = layout.alert(
                html.Div(["Fix the marked fields; nothing was run.", html.Ul(general) if general else None]),
                title="Not valid.",
            )
            return out_errors, classes, box, no_update
        request = {"run": run_id, "overrides": overrides, "settings": settings, "job": uuid.uuid4().hex}
        # a new store starts the job: a store in the page's layout would start a (no-op) background job on
        # every visit, and the form would wait for its first poll (the job writes the run picker's store)
        return out_errors, classes, None, dcc.Store(id={"type": "whatif-request", "key": request["job"]}, data=request)

    @app.callback(
        Output("whatif-result", "children"),
        Output(layout.RUNS_VERSION, "data"),
        Output(layout.WHATIF_PREFILL, "data", allow_duplicate=True),  # used: the next form starts afresh
        Input({"type": "whatif-request", "key": ALL}, "data"),
        background=True,
        manager=ctx.jobs,
        progress=[Output("whatif-progress", "value"), Output("whatif-progress-label", "children")],
        running=[(Output("whatif-run", "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def run_job(set_progress: Any, requests: list) -> tuple:
        request = requests[0] if requests else None
        if not request:
            return no_update, no_update, no_update
        return (*run_whatif(ctx.store.root, request, set_progress), None)


def run_whatif(store_root: Any, request: dict[str, Any], set_progress: Any) -> tuple:
    """The background job: simulate the what-if, save it in the store, show its KPIs beside the base run's."""
    from twin.experiment import run
    from twin.store import RunStore
    from twin.store.diff import kpi_deltas

    store = RunStore(store_root)
    base_id = store.resolve(request["run"])
    base_info = store.info(base_id)
    from dashboards.data import RunView

    base = RunView(store, base_id)
    spec = with_overrides(base.spec, request["overrides"], source="what-if form")
    s = request["settings"]
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] > 0.3 or fraction >= 1:
            last[0] = now
            set_progress((str(round(fraction * 100)), f"simulating… {fraction:.0%}"))

    set_progress(("0", "starting…"))
    overrides = [*base_info.get("overrides", []), *request["overrides"]]
    result = run(
        spec, s["replications"], s["seed"], s["horizon"], None, progress, name=s["scenario"], overrides=overrides
    )
    set_progress(("100", "saving to the run store…"))
    run_id = store.save(result, tags={"source": "dashboard what-if", "base_run": base_id})
    paired = s["seed"] == base_info.get("seed")
    deltas = kpi_deltas(base.per_replication, result.kpis.per_replication, paired=paired)
    rows = []
    unit, per = rate_unit(base.summary["throughput_per_hour"]["mean"])
    for key, label, scale, digits in (
        ("throughput_per_hour", f"Throughput ({unit})", per, 2),
        ("lead_time_hours", "Lead time (h)", 1, 1),
        ("wip", "WIP (batches)", 1, 2),
        ("oee", "Line OEE (%)", 100, 1),
    ):
        d = deltas.get(key)
        delta = ci_text({"mean": d.mean, "ci95": [d.low, d.high]}, scale, digits) if d else ("–", "")
        rows.append(
            html.Tr(
                [
                    html.Td(label),
                    html.Td(ci_text(base.summary.get(key), scale, digits)[0]),
                    html.Td(ci_text(result.kpis.summary.get(key), scale, digits)[0], className="new-value"),
                    html.Td([delta[0], html.Span(delta[1], className="ci")]),
                ]
            )
        )
    table = html.Table(
        [
            html.Thead(
                html.Tr(
                    [
                        html.Th("KPI"),
                        html.Th("base"),
                        html.Th(s["scenario"]),
                        html.Th("Δ " + ("paired" if paired else "Welch")),
                    ]
                )
            ),
            html.Tbody(rows),
        ],
        className="kpi-table",
    )
    message = html.Div(
        [
            f"Stored as run {run_id[:8]} ({s['scenario']}); it is now selected in the run picker. ",
            dcc.Link("Open its overview", href="/"),
        ],
        id="whatif-done",
        **{"data-run": run_id},
    )
    set_progress(("100", "done"))
    return html.Div([layout.alert(message, kind="success", title="Done."), table]), run_id


PAGE = Page(path="/what-if", title="What-if", layout=_layout, register=_register, order=40)
