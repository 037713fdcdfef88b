"""The task DAG of a job: cycles found and reported, a topological order.

The order is a plain Kahn's algorithm (O(tasks + edges)); networkx, which costs 60-150 ms to
import, is loaded only to enumerate the cycles of a graph already known to have one.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

__all__ = ["find_cycles", "topological_order"]


def _kahn(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Every node that does not sit on or behind a cycle, dependencies first, ties as written."""
    position = {name: i for i, name in enumerate(deps)}
    waiting = {name: 0 for name in deps}
    children: dict[str, list[str]] = {name: [] for name in deps}
    for node, parents in deps.items():
        for p in set(parents):
            if p in deps:
                waiting[node] += 1
                children[p].append(node)
    ready = [(position[n], n) for n, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (position[c], c))
    return order


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle's nodes in order (`a -> b -> a` is ['a', 'b']), at most 20."""
    if len(_kahn(deps)) == len(deps):
        return []
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(deps)
    for node, parents in deps.items():
        for p in parents:
            if p in deps:
                g.add_edge(p, node)
    cycles: list[list[str]] = []
    for cyc in nx.simple_cycles(g):
        # rotate so that the report is stable whatever order networkx found it in
        i = cyc.index(min(cyc))
        cycles.append(cyc[i:] + cyc[:i])
        if len(cycles) >= 20:
            break
    return sorted(cycles)


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Tasks ordered so that every task comes after what it depends on (ties: as written)."""
    order = _kahn(deps)
    if len(order) != len(deps):
        raise ValueError("the graph has a cycle; call find_cycles first")
    return order
