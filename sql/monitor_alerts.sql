-- monitor_alerts: alerts raised by monitor passes with the pass's model folder, oldest first ($dataset NULL: all)
SELECT a.pass_id, a.dataset, p.model_path, a.model_fingerprint, a.severity, a.source, a.name,
       a.message, a.created_at
FROM alerts AS a
LEFT JOIN monitor_passes AS p ON p.pass_id = a.pass_id
WHERE $dataset::VARCHAR IS NULL OR a.dataset = $dataset::VARCHAR
ORDER BY a.pass_id, a.severity, a.source, a.name
