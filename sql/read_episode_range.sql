-- read_episode_range: transitions of one dataset whose episode keys lie in [lo, hi], in (episode, step) order
SELECT episode_id, step, obs, action, reward, next_obs, terminated, truncated, "timestamp", extra
FROM transitions
WHERE dataset = $dataset AND episode_id BETWEEN $lo AND $hi
ORDER BY episode_id, step
