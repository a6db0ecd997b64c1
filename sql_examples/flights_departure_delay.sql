-- database: flights
-- Will a flight leave more than 15 minutes late? One prediction per flight, made at its scheduled hour
-- (the flight's time column): features come from the plane, the airports, the weather of that hour and
-- earlier flights, never from later rows. Columns only known after take-off are not features.
ALTER GRAPH IGNORE COLUMN flights(dep_time, arr_time, arr_delay, air_time);

-- trains on the oldest 80 % of flights, reports the newest 10 % beside the trivial predictor
EVALUATE PREDICT flights.dep_delay > 15
FOR EACH flights.flight_id
WITH (epochs = 3);

-- the columns are features again, so the models stored by the other examples still read the graph they were
-- trained on (a stored model refuses a graph that lost a column)
ALTER GRAPH UNIGNORE COLUMN flights(dep_time, arr_time, arr_delay, air_time);
