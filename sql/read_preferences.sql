-- read_preferences: every judgement of one dataset, in a stable order
SELECT episode_a, start_a, stop_a, episode_b, start_b, stop_b, label, margin, annotator,
       "timestamp", ingest_id
FROM preferences
WHERE dataset = $dataset
ORDER BY ingest_id, episode_a, start_a, episode_b, start_b, annotator
