-- last_monitor_pass: the newest ingest a model's monitor passes over a dataset have covered
SELECT max(last_ingest_id)
FROM monitor_passes
WHERE dataset = $dataset AND model_fingerprint = $model_fingerprint
