-- drift_history: drift rows of the given monitor passes ($pass_ids, a list), oldest pass first
SELECT *
FROM drift
WHERE list_contains($pass_ids::BIGINT[], pass_id)
ORDER BY pass_id, kind, name
