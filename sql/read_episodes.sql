-- read_episodes: every transition of the listed episodes of one dataset, in (episode, step) order
SELECT episode_id, step, obs, action, reward, next_obs, terminated, truncated, "timestamp", extra
FROM transitions
WHERE dataset = $dataset AND list_contains($episodes, episode_id)
ORDER BY episode_id, step
