"""Producers and consumers of every tensor of one graph, by node position (read-only).

One index for every reader of a node list: the diff (:mod:`.diff.index` adds metadata), the
toposort (:mod:`.toposort`) and the runtime's pattern matchers (``runtime.plan.PlanView``).
Positions are indices into the node list the index was built from::

    nodes:      0: Mul(x, x) -> m      1: Relu(m) -> y
    producer:   {"m": 0, "y": 1}       (the last writer wins if a name is written twice)
    consumers:  {"x": [0, 0], "m": [1]}  (one entry per input slot that reads the tensor)

Empty names (omitted optional inputs and outputs) are not indexed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property


class GraphIndex:
    """Producer and consumers of each tensor over a list of nodes given by their tensor names.

    Attributes:
        inputs: per node, the names it reads (subgraph reads included when the caller says so).
        outputs: per node, the names it writes.
        producer: tensor -> position of the node that writes it.
        consumers: tensor -> positions of the nodes that read it, in node order, once per slot.
    """

    def __init__(self, inputs: Sequence[Sequence[str]], outputs: Sequence[Sequence[str]]) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.producer: dict[str, int] = {
            name: i for i, written in enumerate(outputs) for name in written if name
        }

    @cached_property
    def consumers(self) -> dict[str, list[int]]:
        """Built on first use (the toposort needs only producers)."""
        readers: dict[str, list[int]] = defaultdict(list)
        for i, read in enumerate(self.inputs):
            for name in read:
                if name:
                    readers[name].append(i)
        return readers
