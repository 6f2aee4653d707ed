-- insert_drift_histograms: reference-vs-current histograms of a monitor pass, from staged_histograms
INSERT INTO drift_histograms
SELECT $pass_id, kind, name, edges, reference, current
FROM staged_histograms
