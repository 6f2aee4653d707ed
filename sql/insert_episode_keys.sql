-- insert_episode_keys: give each new text episode id of staged_ids the next integer key of its dataset
INSERT INTO episode_keys
SELECT $dataset,
       (SELECT coalesce(max(episode_key), -1) FROM episode_keys WHERE dataset = $dataset)
           + row_number() OVER (ORDER BY s.first_row),
       s.episode_id
FROM staged_ids AS s
ANTI JOIN (SELECT episode_id FROM episode_keys WHERE dataset = $dataset) AS k
  ON k.episode_id = s.episode_id
