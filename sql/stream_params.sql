-- stream_params: the dataset and ingest id of a streaming ingest, for the staged view to read (a view takes no bound parameters)
CREATE OR REPLACE TEMP TABLE stream_params AS
SELECT $dataset AS dataset, $ingest_id::BIGINT AS ingest_id
