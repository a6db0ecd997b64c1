-- database: flights
-- Which airports will each plane fly to next week? One row per (plane, rank): the 5 likeliest destinations.
-- `flights` links to `airports` twice (origin, dest): the listed column `dest` names the items,
-- and `flights.tailnum` is the link to the entity. Scored by MAP@5 against two SQL baselines.

-- the plane's own past destinations, most frequent and most recent first, then the popular ones
-- (rows: split, metric, value, popular, past)
EVALUATE PREDICT LIST_DISTINCT(flights.dest, 0, 7, DAYS) RANK TOP 5
FOR EACH planes.tailnum
WHERE COUNT(flights.*, -7, 0, DAYS) > 0
WITH (model = 'past');

-- the entity-conditioned graph model: planes and airports embedded from their subgraphs at the anchor, plus
-- a learnt score for the airports the plane's own recent flights reached (small settings: the example runs
-- in CI; benchmarks/recommend.py trains with epochs = 3, channels = 32, max_train_rows = 4000)
CREATE OR REPLACE MODEL next_destinations AS
PREDICT LIST_DISTINCT(flights.dest, 0, 7, DAYS) RANK TOP 5
FOR EACH planes.tailnum
WHERE COUNT(flights.*, -7, 0, DAYS) > 0
WITH (model = 'conditioned', epochs = 1, channels = 16, max_train_rows = 2000);

SELECT tailnum, rank, dest, round(score, 3) AS score
FROM (PREDICT USING next_destinations)
ORDER BY tailnum, rank LIMIT 10;
