-- read_transitions: every transition of one dataset in (episode, step) order
SELECT episode_id, step, obs, action, reward, next_obs, terminated, truncated, "timestamp", extra
FROM transitions
WHERE dataset = $dataset
ORDER BY episode_id, step
