-- staged_conflicts: staged rows whose key is stored with different values
SELECT s.source, s.source_row, s.episode_id, s.step,
       to_json({'obs': s.obs, 'action': s.action, 'reward': s.reward, 'next_obs': s.next_obs,
                'terminated': s.terminated, 'truncated': s.truncated}) AS record,
       concat_ws(', ',
           CASE WHEN s.obs IS DISTINCT FROM t.obs THEN 'obs' END,
           CASE WHEN s.action IS DISTINCT FROM t.action THEN 'action' END,
           CASE WHEN s.reward IS DISTINCT FROM t.reward THEN 'reward' END,
           CASE WHEN s.next_obs IS DISTINCT FROM t.next_obs THEN 'next_obs' END,
           CASE WHEN s.terminated IS DISTINCT FROM t.terminated THEN 'terminated' END,
           CASE WHEN s.truncated IS DISTINCT FROM t.truncated THEN 'truncated' END
       ) AS differs
FROM staged AS s
JOIN transitions AS t
  ON t.dataset = s.dataset AND t.episode_id = s.episode_id AND t.step = s.step
WHERE s.obs IS DISTINCT FROM t.obs
   OR s.action IS DISTINCT FROM t.action
   OR s.reward IS DISTINCT FROM t.reward
   OR s.next_obs IS DISTINCT FROM t.next_obs
   OR s.terminated IS DISTINCT FROM t.terminated
   OR s.truncated IS DISTINCT FROM t.truncated
ORDER BY s.episode_id, s.step
