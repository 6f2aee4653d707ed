-- insert_drift: one row per column tested in a monitor pass, from the registered frame staged_drift
INSERT INTO drift (pass_id, dataset, model_fingerprint, kind, name, psi, ks, ks_pvalue,
                   wasserstein, severity, created_at, psi_warn, psi_alert, psi_joint,
                   wasserstein_warn, wasserstein_alert, psi_expected)
SELECT $pass_id, $dataset, $model_fingerprint, kind, name, psi, ks, ks_pvalue, wasserstein,
       severity, timezone('UTC', now()), psi_warn, psi_alert, psi_joint, wasserstein_warn,
       wasserstein_alert, psi_expected
FROM staged_drift
