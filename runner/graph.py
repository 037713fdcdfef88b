"""The task DAG of a job: unknown dependencies and cycles found with positions, a topological order.

networkx is imported lazily: it costs 110-150 ms and must stay off paths like `runner --help`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["find_cycles", "topological_order"]


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle's nodes in order (`a -> b -> a` is ['a', 'b']), at most 20."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(deps)
    for node, parents in deps.items():
        for p in parents:
            if p in deps:
                g.add_edge(p, node)
    if nx.is_directed_acyclic_graph(g):
        return []
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
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(deps)
    for node, parents in deps.items():
        for p in parents:
            g.add_edge(p, node)
    position = {name: i for i, name in enumerate(deps)}
    return list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
