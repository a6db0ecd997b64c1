"""Write generated tables into DuckDB: the one loader every generator shares."""
from __future__ import annotations

import pandas as pd


def load_tables(con, ddl: dict[str, str], frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Create each table of ``frames`` with its ``ddl`` and fill it; returns the rows per table.

    ``frames`` is in dependency order (parents first), so every foreign key
    finds its parent. A frame reaches DuckDB as a registered view, no copy
    through Python rows.
    """
    counts = {}
    for name, frame in frames.items():
        con.execute(ddl[name])
        view = f"__rdl_load_{name}"
        con.register(view, frame)
        try:
            con.execute(f'INSERT INTO {name} SELECT * FROM "{view}"')
        finally:
            con.unregister(view)
        counts[name] = len(frame)
    return counts
