"""One colour palette for equipment states and products, shared by the USD scenes and the dashboards.

    >>> state_color("processing")          # linear RGB in [0, 1], for USD displayColor
    (0.18, 0.62, 0.26)
    >>> state_hex("down")                  # for plotly and CSS
    '#d62629'
    >>> state_color("a_state_from_a_future_release") == UNKNOWN_STATE_COLOR
    True

States follow the ISA-95/PackML colour habits of plant HMIs: green producing, amber changeover,
red down, yellow starved, orange blocked, greys for time with no work planned, blues for cleaning
and purples for waiting on people. Every state in ``twin.eventlog.STATES`` has a colour (tested);
a state this palette does not know gets ``UNKNOWN_STATE_COLOR`` (magenta, so it shows).
"""

from __future__ import annotations

RGB = tuple[float, float, float]

STATE_COLORS: dict[str, RGB] = {
    "processing": (0.18, 0.62, 0.26),  # green: producing
    "setup": (0.95, 0.61, 0.07),  # amber: changeover
    "down": (0.84, 0.15, 0.16),  # red: failed, under repair
    "starved": (0.98, 0.85, 0.25),  # yellow: waiting for material
    "blocked": (0.93, 0.42, 0.10),  # orange: done, no room downstream
    "idle": (0.62, 0.62, 0.62),  # grey: no work planned
    "cleaning": (0.20, 0.55, 0.85),  # blue: cleaning, line clearance
    "waiting_cleaning": (0.55, 0.75, 0.93),  # light blue: due for cleaning, waiting for the skid or crew
    "waiting_operator": (0.58, 0.40, 0.74),  # purple: waiting for a qualified operator
    "off_shift": (0.35, 0.35, 0.40),  # dark grey: outside the shift calendar
}

UNKNOWN_STATE_COLOR: RGB = (0.85, 0.20, 0.75)
"""Colour of a state the palette does not know."""

NO_STATE_COLOR: RGB = (0.80, 0.80, 0.80)
"""Colour of equipment with no state (a layout without a run, or before the first state row)."""

PRODUCT_COLORS: tuple[RGB, ...] = (
    (0.12, 0.47, 0.71), (0.58, 0.40, 0.74), (0.09, 0.75, 0.81), (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76), (0.74, 0.74, 0.13), (0.50, 0.50, 0.50), (0.17, 0.63, 0.17),
)  # fmt: skip
"""Colours of products in the order the spec lists them (cycled); distinct from the state colours' reds and greens."""


def state_color(state: str | None) -> RGB:
    """The colour of an equipment state (``NO_STATE_COLOR`` for None, ``UNKNOWN_STATE_COLOR`` if unknown)."""
    if state is None:
        return NO_STATE_COLOR
    return STATE_COLORS.get(state, UNKNOWN_STATE_COLOR)


def product_color(index: int) -> RGB:
    """The colour of the product at ``index`` in the spec's product list."""
    return PRODUCT_COLORS[index % len(PRODUCT_COLORS)]


def to_hex(rgb: RGB) -> str:
    """``(1.0, 0.5, 0.0)`` -> ``'#ff8000'``."""
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgb)


def state_hex(state: str | None) -> str:
    """The colour of an equipment state as ``#rrggbb``."""
    return to_hex(state_color(state))
