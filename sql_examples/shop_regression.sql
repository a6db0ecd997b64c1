-- database: shop
-- How much will each recently active customer spend in the next 30 days? (regression, MAE)
-- EVALUATE PREDICT trains and reports the test split beside the trivial predictor.
EVALUATE PREDICT SUM(orders.amount, 0, 30, DAYS)
FOR EACH customers.customer_id
WHERE COUNT(orders.*, -30, 0, DAYS) > 0
WITH (epochs = 3, fanouts = '16,8', channels = 64, max_train_rows = 8000);
