-- insert_drift: one row per column tested in a monitor pass, from the registered frame staged_drift
INSERT INTO drift
SELECT $pass_id, $dataset, $model_fingerprint, kind, name, psi, ks, ks_pvalue, wasserstein,
       severity, now()::TIMESTAMP
FROM staged_drift
