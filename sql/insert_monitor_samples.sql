-- insert_monitor_samples: a sample of predicted-vs-true values of a monitor pass, from staged_samples
INSERT INTO monitor_samples
SELECT $pass_id, episode_id, step, y_true, y_pred
FROM staged_samples
