-- monitor_passes: monitor passes of one dataset, or of every dataset when $dataset is NULL, oldest first
SELECT pass_id, dataset, model_path, model_fingerprint, reference, first_ingest_id, last_ingest_id,
       episodes, "rows", alerts, started_at, finished_at
FROM monitor_passes
WHERE $dataset::VARCHAR IS NULL OR dataset = $dataset::VARCHAR
ORDER BY pass_id
