-- insert_metrics: one row per metric of a monitor pass, from the registered frame staged_metrics
INSERT INTO metrics
SELECT $pass_id, $dataset, $model_fingerprint, metric, value, timezone('UTC', now())
FROM staged_metrics
