-- monitor_drift: drift statistics of each model's latest monitor pass per dataset, with the pass's model folder ($dataset NULL: all); every column of drift, the limits too where the store has them
SELECT d.pass_id, d.dataset, p.model_path, d.* EXCLUDE (pass_id, dataset)
FROM drift AS d
JOIN monitor_passes AS p ON p.pass_id = d.pass_id
WHERE ($dataset::VARCHAR IS NULL OR d.dataset = $dataset::VARCHAR)
  AND d.pass_id IN (
      SELECT max(pass_id) FROM monitor_passes
      WHERE $dataset::VARCHAR IS NULL OR dataset = $dataset::VARCHAR
      GROUP BY dataset, model_fingerprint
  )
ORDER BY d.pass_id, d.kind, d.name
