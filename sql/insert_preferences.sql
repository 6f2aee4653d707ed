-- insert_preferences: land the staged judgements whose key the store does not hold yet
INSERT INTO preferences
SELECT $dataset, s.episode_a, s.start_a, s.stop_a, s.episode_b, s.start_b, s.stop_b,
       s.label, s.margin, s.annotator, s."timestamp", $ingest_id
FROM staged_preferences AS s
ANTI JOIN (SELECT * FROM preferences WHERE dataset = $dataset) AS p
  ON p.episode_a = s.episode_a AND p.start_a = s.start_a AND p.stop_a = s.stop_a
 AND p.episode_b = s.episode_b AND p.start_b = s.start_b AND p.stop_b = s.stop_b
 AND p.annotator = s.annotator
