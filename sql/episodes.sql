-- episodes: per-episode length, return and how it ended, for one dataset
SELECT episode_id,
       count(*) AS length,
       min(step) AS first_step,
       max(step) AS last_step,
       sum(reward) AS return,
       bool_or(terminated) AS terminated,
       bool_or(truncated) AS truncated
FROM transitions
WHERE dataset = $dataset
GROUP BY episode_id
ORDER BY episode_id
