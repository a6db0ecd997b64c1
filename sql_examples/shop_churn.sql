-- database: shop
-- Which active customers will place no order in the next 30 days?
-- Trained on the whole shop database (customers, orders, products, reviews).
PREDICT COUNT(orders.*, 0, 30, DAYS) = 0
FOR EACH customers.customer_id
WHERE COUNT(orders.*, -90, 0, DAYS) > 0
WITH (epochs = 6, fanouts = '16,8', max_train_rows = 20000);
