-- stream_append: append one checked batch (stream_batch) to the staging table
INSERT INTO stream_raw SELECT * FROM stream_batch
