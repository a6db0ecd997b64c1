-- database: flights
-- The mean departure delay (minutes) of each carrier's flights over the next day (regression, MAE).
PREDICT AVG(flights.dep_delay, 0, 1, DAYS)
FOR EACH airlines.carrier;
