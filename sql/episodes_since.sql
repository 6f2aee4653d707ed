-- episodes_since: episodes of a dataset with a transition from an ingest after $since, and that ingest
SELECT episode_id, max(ingest_id) AS last_ingest_id, min(ingest_id) AS first_ingest_id
FROM transitions
WHERE dataset = $dataset
GROUP BY episode_id
HAVING max(ingest_id) > $since
ORDER BY episode_id
