"""rdl-sql: relational deep learning inside DuckDB."""
