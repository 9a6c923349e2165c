"""The SimPy engine: a line spec in, an event log out.

>>> from twin.engine import simulate
>>> log = simulate(spec, replications=5, seed=1)
"""

from twin.engine.simulate import simulate

__all__ = ["simulate"]
