"""Explicit, reproducible randomness: one generator per (replication, owner, stream).

    >>> rng = stream_rng(seed=7, replication=0, owner="press", stream="process:A")
    >>> draw = block_draws(sampler, rng); first = next(draw)

Streams are keyed by names, not by position, so adding or changing one station leaves the draws
of every other station unchanged (common random numbers across what-if scenarios).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from itertools import chain, repeat

import numpy as np

BLOCK = 1024


def _key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def stream_rng(seed: int, replication: int, owner: str, stream: str) -> np.random.Generator:
    """The generator of one stream; the same arguments always give the same draws."""
    sequence = np.random.SeedSequence(seed, spawn_key=(replication, _key(owner), _key(stream)))
    return np.random.Generator(np.random.PCG64(sequence))


def block_draws(sampler: Callable[[np.random.Generator, int], np.ndarray], rng: np.random.Generator) -> Iterator[float]:
    """An endless iterator of Python floats, drawn ``BLOCK`` at a time (fast and deterministic; a block is drawn
    when the one before is used up, and each draw costs no Python frame)."""
    return chain.from_iterable(map(lambda _: sampler(rng, BLOCK).tolist(), repeat(None)))


def first_draws(
    sampler: Callable[[np.random.Generator, int], np.ndarray], rng: np.random.Generator, n: int
) -> np.ndarray:
    """The first ``n`` values ``block_draws`` would give, as an array (for vectorized evaluators)."""
    blocks = [sampler(rng, BLOCK) for _ in range(-(-n // BLOCK))]
    return np.concatenate(blocks)[:n] if blocks else np.empty(0)


def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform draws in [0, 1): the sampler of the reject and out-of-specification streams."""
    return rng.random(n)
