"""How deep the GNN looks by default: far enough to reach every table linked to the entity.

A label can depend on any row linked to the entity, however far: churn on
the ratings other shoppers gave the products a customer bought sits three
links away (customers <- orders -> products <- reviews). A model of two
layers never sees such a table, whatever it learns; so when the statement
does not set ``layers``, the planner sets it to the number of links to the
farthest reachable table, at least 2 (so a row's siblings through a parent,
e.g. the other flights of a plane, are read even when every table is one
link away) and at most ``options.MAX_DEFAULT_LAYERS`` (the sampled tree
grows by the fan-out at each hop).
"""
from __future__ import annotations

from .schema import Schema

#: the default depth when every table is one link away (or none is linked)
MIN_DEFAULT_DEPTH = 2


def link_distances(schema: Schema, entity: str) -> dict[str, int]:
    """Links from ``entity`` to every table reachable from it (either direction), by breadth-first search."""
    dist = {entity: 0}
    frontier = [entity]
    while frontier:
        nxt = []
        for lk in schema.links:
            for a, b in ((lk.child, lk.parent), (lk.parent, lk.child)):
                if a in frontier and b not in dist:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    return dist


def default_depth(schema: Schema, entity: str) -> int:
    """The layers a statement that does not set them gets: links to the farthest table, at least 2."""
    return max(MIN_DEFAULT_DEPTH, max(link_distances(schema, entity).values()))
