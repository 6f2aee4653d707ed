-- fingerprint: an order-independent hash of a dataset's transitions (changes when any row does)
SELECT count(*) AS n,
       coalesce(bit_xor(hash(episode_id, step, obs, action, reward, next_obs, terminated, truncated)), 0)
           AS content_hash
FROM transitions
WHERE dataset = $dataset
