-- stream_staged_text_derive: stream_staged_derive for text episode ids, replaced by the dataset's integer keys
CREATE OR REPLACE TEMP TABLE staged AS
SELECT $dataset AS dataset, k.episode_key AS episode_id, j.step, j.obs, j.action, j.reward,
       CASE WHEN lead(j.step) OVER w = j.step + 1 THEN lead(j.obs) OVER w END AS next_obs,
       j.terminated, j.truncated, j."timestamp", j.extra, j.source, j.source_row,
       $ingest_id::BIGINT AS ingest_id
FROM stream_judged AS j
JOIN episode_keys AS k ON k.dataset = $dataset AND k.episode_id = j.episode_id
WHERE j.reason IS NULL
WINDOW w AS (PARTITION BY j.episode_id ORDER BY j.step)
