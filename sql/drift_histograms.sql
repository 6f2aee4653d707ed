-- drift_histograms: the reference-vs-current histograms a monitor pass kept
SELECT kind, name, edges, reference, current
FROM drift_histograms
WHERE pass_id = $pass_id
ORDER BY kind, name
