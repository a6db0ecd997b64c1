-- database: shop
-- The graph rdl-sql sees, and how to correct it; overrides persist in table rdl_graph.
DESCRIBE GRAPH;
ALTER GRAPH IGNORE COLUMN customers(age);
ALTER GRAPH SET TIME COLUMN products(NONE);
SELECT kind, table_name, columns FROM rdl_graph;
