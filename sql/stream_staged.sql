-- stream_staged: the landing rows as staged_conflicts and insert_new read them (next_obs as the log gives it)
CREATE OR REPLACE TEMP TABLE staged AS
SELECT $dataset AS dataset, episode_id, step, obs, action, reward, next_obs,
       terminated, truncated, "timestamp", extra, source, source_row,
       $ingest_id::BIGINT AS ingest_id
FROM stream_judged
WHERE reason IS NULL
