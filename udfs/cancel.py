"""``Cancelled``: how a training stopped by ``Connection.cancel()`` or a server's CancelRequest ends.

One class for every model kind, in a module that loads neither torch nor
LightGBM, so the GNN's batches, LightGBM's boosting rounds and ``auto``'s
search all raise it and the front-end and the server answer each alike.
"""
from __future__ import annotations


class Cancelled(KeyboardInterrupt):
    """A training stopped because its ``cancel`` event was set.

    A ``KeyboardInterrupt``, so a caller that already stops cleanly on Ctrl-C
    stops the same way when a server cancels the statement.
    """
