-- stream_judge: every staged row with the reason it is refused (NULL: it lands), as logs.prepare judges a whole log
-- $obs_modes/$action_modes: each source's most common lengths (list index source_idx + 1);
-- $obs_dim/$action_dim: the dataset's, or the log's most common. The reasons come in
-- prepare's order: the row checks, the lengths against the source, the late row checks,
-- next_obs against obs, the lengths against the dataset; then duplicate keys.
CREATE OR REPLACE TEMP TABLE stream_judged AS
WITH repeated AS (
    -- A key twice in one ingest (inside one file or across files) is ambiguous: reject all.
    SELECT episode_id, step FROM stream_raw
    WHERE episode_id IS NOT NULL
    GROUP BY episode_id, step
    HAVING count(*) > 1
)
SELECT r.source_idx, r.source, r.source_row, r.episode_id, r.step, r.obs, r.action, r.reward,
       r.next_obs, r.terminated, r.truncated, r."timestamp", r.extra, r.record,
       coalesce(
           r.reason,
           CASE WHEN len(r.obs) <> $obs_modes[r.source_idx + 1]
                THEN format('obs has {} values; expected {}', len(r.obs), $obs_modes[r.source_idx + 1]) END,
           CASE WHEN len(r.action) <> $action_modes[r.source_idx + 1]
                THEN format('action has {} values; expected {}', len(r.action), $action_modes[r.source_idx + 1]) END,
           r.reason_late,
           CASE WHEN len(r.next_obs) <> $obs_modes[r.source_idx + 1]
                THEN format('next_obs has {} values; expected {} like obs', len(r.next_obs), $obs_modes[r.source_idx + 1]) END,
           CASE WHEN len(r.obs) <> $obs_dim
                THEN format('obs has {} values; the dataset has {}', len(r.obs), $obs_dim)
                WHEN len(r.action) <> $action_dim
                THEN format('action has {} values; the dataset has {}', len(r.action), $action_dim) END,
           CASE WHEN d.episode_id IS NOT NULL
                THEN format('duplicate step: episode {} step {} appears more than once', r.episode_id, r.step) END
       ) AS reason
FROM stream_raw AS r
LEFT JOIN repeated AS d ON d.episode_id = r.episode_id AND d.step = r.step
