-- insert_monitor_pass: record one monitor pass; its pass_id keys the metrics, drift, alerts and samples
INSERT INTO monitor_passes
VALUES (nextval('monitor_seq'), $dataset, $model_path, $model_fingerprint, $reference,
        $first_ingest_id, $last_ingest_id, $episodes, $rows, $alerts,
        $started_at, timezone('UTC', now()))
RETURNING pass_id
