-- stream_staged: the landing rows as staged_conflicts and insert_new read them (next_obs as the log gives it); a view, since a copy cost a write and a read of the whole log, spilled to disk once past the memory limit (54 s of 323 at 30M rows)
CREATE OR REPLACE TEMP VIEW staged AS
SELECT p.dataset, j.episode_id, j.step, j.obs, j.action, j.reward, j.next_obs,
       j.terminated, j.truncated, j."timestamp", j.extra, j.source, j.source_row,
       p.ingest_id
FROM stream_judged AS j, stream_params AS p
WHERE j.reason IS NULL
