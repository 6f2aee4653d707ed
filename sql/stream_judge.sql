-- stream_judge: every staged row with its final step and the reason it is refused (NULL: it lands), as logs.prepare judges a whole log
-- $obs_modes/$action_modes: each source's most common lengths (list index source_idx + 1);
-- $obs_dim/$action_dim: the dataset's, or the log's most common. The reasons come in
-- prepare's order: the row checks, the lengths against the source, the late row checks,
-- next_obs against obs, the lengths against the dataset; then duplicate keys.
CREATE OR REPLACE TEMP TABLE stream_judged AS
WITH numbered AS (
    SELECT source_idx, source, source_row, episode_id,
           -- A source without a step column: steps count each episode's rows in source order.
           CASE WHEN step_derived
                THEN row_number() OVER (PARTITION BY source_idx, episode_id ORDER BY source_row) - 1
                ELSE step END AS step,
           obs, action, reward, next_obs, terminated, truncated, "timestamp", extra, record,
           coalesce(
               reason,
               CASE WHEN len(obs) <> $obs_modes[source_idx + 1]
                    THEN format('obs has {} values; expected {}', len(obs), $obs_modes[source_idx + 1]) END,
               CASE WHEN len(action) <> $action_modes[source_idx + 1]
                    THEN format('action has {} values; expected {}', len(action), $action_modes[source_idx + 1]) END,
               reason_late,
               CASE WHEN len(next_obs) <> $obs_modes[source_idx + 1]
                    THEN format('next_obs has {} values; expected {} like obs', len(next_obs), $obs_modes[source_idx + 1]) END,
               CASE WHEN len(obs) <> $obs_dim
                    THEN format('obs has {} values; the dataset has {}', len(obs), $obs_dim)
                    WHEN len(action) <> $action_dim
                    THEN format('action has {} values; the dataset has {}', len(action), $action_dim) END
           ) AS reason
    FROM stream_raw
)
SELECT * REPLACE (
    coalesce(
        reason,
        -- A key twice in one ingest (inside one file or across files) is ambiguous: reject all.
        CASE WHEN episode_id IS NOT NULL AND count(*) OVER (PARTITION BY episode_id, step) > 1
             THEN format('duplicate step: episode {} step {} appears more than once', episode_id, step) END
    ) AS reason
)
FROM numbered
