-- insert_new: land the staged rows whose key the store does not hold yet
INSERT INTO transitions
SELECT s.dataset, s.episode_id, s.step, s.obs, s.action, s.reward, s.next_obs,
       s.terminated, s.truncated, s."timestamp", s.extra, s.ingest_id
FROM staged AS s
ANTI JOIN (SELECT episode_id, step FROM transitions WHERE dataset = $dataset) AS t
  ON t.episode_id = s.episode_id AND t.step = s.step
