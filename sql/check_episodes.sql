-- check_episodes: step numbering and episode ends of one dataset, one row per problem kind
WITH per_episode AS (
    SELECT episode_id,
           count(*) AS n,
           min(step) AS first_step,
           max(step) AS last_step,
           arg_max(terminated, step) AS last_terminated,
           arg_max(truncated, step) AS last_truncated,
           count(*) FILTER (WHERE (terminated OR truncated)) AS n_done
    FROM transitions
    WHERE dataset = $dataset
    GROUP BY episode_id
)
SELECT
    count(*) AS episodes,
    count(*) FILTER (WHERE last_step - first_step + 1 <> n) AS episodes_with_step_gaps,
    coalesce(sum(last_step - first_step + 1 - n), 0)::BIGINT AS missing_steps,
    count(*) FILTER (WHERE first_step <> 0) AS episodes_not_starting_at_0,
    count(*) FILTER (WHERE NOT last_terminated AND NOT last_truncated) AS episodes_unfinished,
    count(*) FILTER (WHERE last_terminated) AS episodes_terminated,
    count(*) FILTER (WHERE last_truncated AND NOT last_terminated) AS episodes_truncated,
    count(*) FILTER (WHERE n_done > (CASE WHEN last_terminated OR last_truncated THEN 1 ELSE 0 END))
        AS episodes_done_mid_episode,
    coalesce(min(n), 0) AS min_length,
    coalesce(max(n), 0) AS max_length,
    coalesce(avg(n), 0) AS mean_length,
    list(episode_id ORDER BY episode_id) FILTER (WHERE last_step - first_step + 1 <> n)[1:5]
        AS example_gap_episodes,
    list(episode_id ORDER BY episode_id) FILTER (WHERE NOT last_terminated AND NOT last_truncated)[1:5]
        AS example_unfinished_episodes
FROM per_episode
