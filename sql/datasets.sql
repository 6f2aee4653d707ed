-- datasets: one row per dataset with its size and dimensions
SELECT d.dataset,
       count(DISTINCT t.episode_id) AS episodes,
       count(t.step) AS transitions,
       d.obs_dim, d.action_dim, d.action_discrete,
       count(t.step) FILTER (WHERE t.reward IS NULL) AS rewards_missing,
       d.created_at, d.updated_at
FROM datasets AS d
LEFT JOIN transitions AS t ON t.dataset = d.dataset
GROUP BY ALL
ORDER BY d.dataset
