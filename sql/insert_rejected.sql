-- insert_rejected: quarantine rows refused by an ingest, with the reason
INSERT INTO rejected
SELECT $ingest_id, $dataset, source, "row", reason, record, timezone('UTC', now())
FROM rejected_staged
