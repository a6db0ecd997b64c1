-- database: shop
-- Fill in a column: rows with a value train, rows with NULL get a prediction and class probabilities.
UPDATE customers SET country = NULL WHERE customer_id % 10 = 0;
PREDICT customers.country
FOR EACH customers.customer_id
WITH (epochs = 2, fanouts = '8,4', channels = 32);
