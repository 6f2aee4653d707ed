-- monitor_samples: the predicted-vs-true sample a monitor pass kept, in (episode, step) order
SELECT episode_id, step, y_true, y_pred
FROM monitor_samples
WHERE pass_id = $pass_id
ORDER BY episode_id, step
