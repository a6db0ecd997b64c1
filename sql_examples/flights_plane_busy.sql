-- database: flights
-- Will a plane that flew last week fly more than 5 flights in the next 7 days?
-- planes is static; flights links to it through tailnum (declared with ALTER GRAPH: 50,094 flights
-- carry a tailnum missing from planes and 2,512 have none; they stay as flights without that edge).
PREDICT COUNT(flights.*, 0, 7, DAYS) > 5
FOR EACH planes.tailnum
WHERE COUNT(flights.*, -7, 0, DAYS) > 0
WITH (epochs = 4, max_train_rows = 10000);
