-- stream_staged_derive: stream_staged for a log without next_obs: the obs of the following step of the same episode
CREATE OR REPLACE TEMP TABLE staged AS
SELECT $dataset AS dataset, episode_id, step, obs, action, reward,
       -- The last step of an episode (and any step before a gap) has none: NULL, not invented.
       CASE WHEN lead(step) OVER w = step + 1 THEN lead(obs) OVER w END AS next_obs,
       terminated, truncated, "timestamp", extra, source, source_row,
       $ingest_id::BIGINT AS ingest_id
FROM stream_judged
WHERE reason IS NULL
WINDOW w AS (PARTITION BY episode_id ORDER BY step)
