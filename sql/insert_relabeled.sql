-- insert_relabeled: copy a dataset's transitions into another, rewards replaced by the staged predictions (NULL where none)
INSERT INTO transitions
SELECT $target, t.episode_id, t.step, t.obs, t.action, p.reward, t.next_obs,
       t.terminated, t.truncated, t."timestamp", t.extra, $ingest_id
FROM transitions AS t
LEFT JOIN predicted AS p ON p.episode_id = t.episode_id AND p.step = t.step
WHERE t.dataset = $source
