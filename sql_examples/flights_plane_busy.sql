-- database: flights
-- Will a plane that flew last week fly more than 5 flights in the next 7 days? Stored as model plane_busy.
-- planes is static; flights links to it through tailnum (declared with ALTER GRAPH: 50,094 flights
-- carry a tailnum missing from planes and 2,512 have none; they stay as flights without that edge).
CREATE OR REPLACE MODEL plane_busy AS
PREDICT COUNT(flights.*, 0, 7, DAYS) > 5
FOR EACH planes.tailnum
WHERE COUNT(flights.*, -7, 0, DAYS) > 0
WITH (epochs = 4, max_train_rows = 10000);

-- yes / no uses the threshold chosen on validation (DESCRIBE MODEL plane_busy shows it), not a fixed 0.5
SELECT p.prediction AS busy_next_week, count(*) AS planes, round(avg(p.score), 3) AS mean_score
FROM (PREDICT USING plane_busy) p
GROUP BY p.prediction ORDER BY busy_next_week;

-- the planes most likely to be busy, with what table planes says about them
SELECT p.tailnum, pl.manufacturer, pl.seats, p.prediction, round(p.score, 3) AS score
FROM (PREDICT USING plane_busy) p JOIN planes pl USING (tailnum)
ORDER BY p.score DESC LIMIT 5;
