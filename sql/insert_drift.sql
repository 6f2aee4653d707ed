-- insert_drift: one row per column tested in a monitor pass, from the registered frame staged_drift
INSERT INTO drift
SELECT $pass_id, $dataset, $model_fingerprint, kind, name, psi, ks, ks_pvalue, wasserstein,
       severity, timezone('UTC', now())
FROM staged_drift
