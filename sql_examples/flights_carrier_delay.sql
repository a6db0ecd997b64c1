-- database: flights
-- The mean departure delay (minutes) of each carrier's flights over the next day (regression, MAE).
-- Stored as model carrier_delay, then scored and joined to the airline names.
CREATE OR REPLACE MODEL carrier_delay AS
PREDICT AVG(flights.dep_delay, 0, 1, DAYS)
FOR EACH airlines.carrier;

SELECT a.name AS airline, round(p.prediction, 1) AS expected_mean_delay_minutes
FROM (PREDICT USING carrier_delay) p JOIN airlines a USING (carrier)
ORDER BY expected_mean_delay_minutes DESC;
