-- database: shop
-- A named model lives in the database file (table rdl_models); score and evaluate it without retraining.
CREATE OR REPLACE MODEL churn AS
PREDICT COUNT(orders.*, 0, 30, DAYS) = 0
FOR EACH customers.customer_id
WHERE COUNT(orders.*, -90, 0, DAYS) > 0
WITH (epochs = 3, fanouts = '16,8', channels = 64, max_train_rows = 8000);

SHOW MODELS;

DESCRIBE MODEL churn;

-- today's churn scores, joined back to the customers
SELECT c.country, count(*) AS customers, round(avg(p.score), 3) AS mean_churn_score
FROM (PREDICT USING churn) p JOIN customers c USING (customer_id)
GROUP BY c.country ORDER BY mean_churn_score DESC;

-- score chosen customers, each at its own anchor time (a backtest of (entity, time) pairs)
PREDICT USING churn
FOR customers.customer_id IN (SELECT customer_id, signup_at + INTERVAL 120 DAY FROM customers WHERE customer_id <= 5);

-- fresh labels: how good was it six months ago?
EVALUATE MODEL churn AS OF TIMESTAMP '2024-06-30';

-- a real table any tool reading the file can open
CREATE OR REPLACE TABLE churn_scores AS PREDICT USING churn;
-- predicted_to_churn uses the threshold chosen on validation (DESCRIBE MODEL churn shows it)
SELECT count(*) AS scored, count(*) FILTER (WHERE prediction) AS predicted_to_churn FROM churn_scores;

-- the model stays in the file for PREDICT USING later; DROP MODEL churn removes it
