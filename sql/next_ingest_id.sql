-- next_ingest_id: draw the id of a new ingest
SELECT nextval('ingest_seq') AS ingest_id
