-- database: shop
-- The plan without training: graph sizes, anchor times, the generated SQL, fan-outs.
EXPLAIN PREDICT SUM(orders.amount, 0, 30, DAYS)
FOR EACH customers.customer_id
WHERE COUNT(orders.*, -90, 0, DAYS) > 0;
