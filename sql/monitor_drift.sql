-- monitor_drift: drift statistics of monitor passes with the pass's model folder, oldest first ($dataset NULL: all)
SELECT d.pass_id, d.dataset, p.model_path, d.model_fingerprint, d.kind, d.name, d.psi, d.ks,
       d.ks_pvalue, d.wasserstein, d.severity, d.created_at
FROM drift AS d
LEFT JOIN monitor_passes AS p ON p.pass_id = d.pass_id
WHERE $dataset::VARCHAR IS NULL OR d.dataset = $dataset::VARCHAR
ORDER BY d.pass_id, d.kind, d.name
