"""Trained models held in this process: for the scoring UDFs, and for reuse by an identical statement.

A model is held under a key that the scoring query passes to
``rdl_score_<task>``; the registry keeps the last few, releases older ones,
and installs the UDFs on the session's connection once. Reuse is keyed by
the statement's canonical text and the digest of the data and graph
definition it reads, so neither whitespace nor a comment, but any data or
graph change, decides whether a model is trained again.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict

_keys = itertools.count(1)


def install_udfs(con) -> None:
    """Install the scoring UDFs on a plain DuckDB connection."""
    from rdl_sql.udfs import scoring  # torch: loaded only when a session scores, not at import
    scoring.register(con)


class ModelRegistry:
    MAX_HELD = 4

    def __init__(self, con):
        self._con = con
        self._held: list[str] = []
        self._suffix: str | None = None  # of the scoring UDFs' names on this connection, once installed
        self._trained: OrderedDict[tuple[str, str], object] = OrderedDict()

    def hold(self, result) -> str:
        """Keep a trained GNN (an ``engine.gnn.GnnResult``) for the scoring UDFs; returns its key."""
        from rdl_sql.udfs import scoring  # torch: loaded only once a model is scored
        key = f"m{next(_keys)}"
        scoring.hold(key, result.trained, result.graph)
        self._held.append(key)
        while len(self._held) > self.MAX_HELD:
            scoring.release(self._held.pop(0))
        if self._suffix is None:
            self._suffix = scoring.register(self._con)
        return key

    def score_function(self, task_type) -> str:
        """The name of ``task_type``'s scoring UDF on this connection (after ``hold``).

        Usually ``rdl_score_<task>``; a second connection of this process to the same
        database gets names of its own (``udfs.scoring.register``).
        """
        return task_type.score_function + (self._suffix or "")

    def trained(self, identity: tuple[str, str]):
        """The model trained earlier in this session by the same statement on the same data, or None."""
        return self._trained.get(identity)

    def remember(self, identity: tuple[str, str], result) -> None:
        self._trained[identity] = result
        self._trained.move_to_end(identity)
        while len(self._trained) > self.MAX_HELD:
            self._trained.popitem(last=False)

    def close(self) -> None:
        if self._held:
            from rdl_sql.udfs import scoring  # torch: a session that scored has loaded it already
            for key in self._held:
                scoring.release(key)
            self._held.clear()
        if self._suffix is not None:
            from rdl_sql.udfs import scoring  # torch: loaded already, since the UDFs were installed
            # DuckDB keeps the function in a catalog other connections share; left there, it would
            # call into a Python function freed with this connection
            scoring.unregister(self._con, self._suffix)
            self._suffix = None
        self._trained.clear()
