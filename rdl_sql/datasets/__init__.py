"""Example databases built inside DuckDB."""
from .flights import build_flights

__all__ = ["build_flights"]
