-- insert_alerts: the alerts a monitor pass raised, from the registered frame staged_alerts
INSERT INTO alerts
SELECT $pass_id, $dataset, $model_fingerprint, severity, source, name, message, timezone('UTC', now())
FROM staged_alerts
