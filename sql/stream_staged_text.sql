-- stream_staged_text: stream_staged for text episode ids, replaced by the dataset's integer keys
CREATE OR REPLACE TEMP TABLE staged AS
SELECT $dataset AS dataset, k.episode_key AS episode_id, j.step, j.obs, j.action, j.reward,
       j.next_obs, j.terminated, j.truncated, j."timestamp", j.extra, j.source, j.source_row,
       $ingest_id::BIGINT AS ingest_id
FROM stream_judged AS j
JOIN episode_keys AS k ON k.dataset = $dataset AND k.episode_id = j.episode_id
WHERE j.reason IS NULL
