"""twin: a digital twin of pharmaceutical production lines.

>>> import twin
>>> spec = twin.load_spec("osd-tablet")            # a file path or a built-in model
>>> result = twin.run(spec, replications=5, seed=1)
>>> result.kpis.summary["oee"]
"""

__version__ = "0.1.0"

from twin.engine import simulate
from twin.errors import InputError, Problem, SpecError, TwinError
from twin.eventlog import EventLog, state_intervals
from twin.experiment import compare, run, with_overrides
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.model import LineSpec

__all__ = [
    "EventLog",
    "InputError",
    "LineSpec",
    "Problem",
    "SpecError",
    "TwinError",
    "__version__",
    "compare",
    "compute_kpis",
    "load_spec",
    "run",
    "simulate",
    "state_intervals",
    "with_overrides",
]
