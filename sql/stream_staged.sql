-- stream_staged: the landing rows as staged_conflicts and insert_new read them, sorted by key; next_obs from the following step when $derive
CREATE OR REPLACE TEMP TABLE staged AS
SELECT $dataset AS dataset, episode_id, step, obs, action, reward,
       CASE WHEN NOT $derive THEN next_obs
            -- The last step of an episode (and any step before a gap) has none: NULL, not invented.
            WHEN lead(step) OVER w = step + 1 THEN lead(obs) OVER w END AS next_obs,
       terminated, truncated, "timestamp", extra, source, source_row,
       $ingest_id::BIGINT AS ingest_id
FROM stream_judged
WHERE reason IS NULL
WINDOW w AS (PARTITION BY episode_id ORDER BY step)
ORDER BY episode_id, step
