-- stream_create: the staging table of a streaming ingest, with the columns of its first batch (stream_batch)
CREATE OR REPLACE TEMP TABLE stream_raw AS SELECT * FROM stream_batch LIMIT 0
