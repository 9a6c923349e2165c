"""Upper bounds on input: what a file may hold and how much work a spec may ask for.

    >>> from twin.spec.limits import MAX_SPEC_BYTES, MAX_HOURS

Each bound sits far above any real plant model (the built-in lines use a few hundred values, a
half-year horizon and batches of a million tablets), so only hostile or mistaken input meets one.
The spec models, the YAML reader, the CLI and the README all read these names: one copy each.
"""

from __future__ import annotations

# Files (specs, tag maps) and the YAML in them
MAX_SPEC_BYTES = 1024 * 1024  # a spec or tag-map file; the built-in models are about 10 KB
MAX_DEPTH = 64  # nesting of mappings and lists, aliases expanded (the built-in models: 6)
MAX_NODES = 100_000  # values of a document, aliases expanded ("billion laughs" stop here)
MAX_NUMBER_CHARS = 100  # characters of one number (Python refuses ints of 4,300 digits)

# Numbers that size the work of a run
MAX_HOURS = 1_000_000.0  # any duration, the horizon included: 114 years
MIN_HORIZON_HOURS = 1 / 3600  # a run shorter than a second is not a run
MAX_BATCH_UNITS = 1e12  # units (tablets, vials) in one batch
MAX_MASS_KG = 1e6  # kg in one batch
MAX_UNITS_PER_HOUR = 1e12  # nameplate rate of fast equipment
MAX_COUNT = 1_000_000  # buffer places, campaign batches, batches between cleans
MAX_TOTAL_UNITS = 10_000  # equipment units of a whole line
MAX_LIST = 1_000  # stations, products, pools, rooms, skids, hold times, campaigns, shifts
MAX_EMPIRICAL = 10_000  # observed values of one empirical distribution
MAX_REPLICATIONS = 10_000  # replications of one run
MAX_SEED = 2**63 - 1
MIN_WEIBULL_SHAPE, MAX_WEIBULL_SHAPE = 0.01, 1000.0  # mean = scale * gamma(1 + 1/shape) stays finite

# The work budget of a run (``twin run --max-events`` overrides it)
DEFAULT_MAX_EVENTS = 20_000_000  # about a minute and 4 GB of memory on the 2-core development machine
