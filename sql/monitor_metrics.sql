-- monitor_metrics: accuracy metrics of monitor passes with the pass's model folder, oldest first ($dataset NULL: all)
SELECT m.pass_id, m.dataset, p.model_path, m.model_fingerprint, m.metric, m.value, m.created_at
FROM metrics AS m
LEFT JOIN monitor_passes AS p ON p.pass_id = m.pass_id
WHERE $dataset::VARCHAR IS NULL OR m.dataset = $dataset::VARCHAR
ORDER BY m.pass_id, m.metric
