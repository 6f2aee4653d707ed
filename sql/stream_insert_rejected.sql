-- stream_insert_rejected: quarantine the refused rows; a row refused only by a check across rows keeps its canonical record (no second read of the source)
INSERT INTO rejected
SELECT $ingest_id, $dataset, source, source_row, reason,
       coalesce(record, to_json({'episode_id': episode_id, 'step': step, 'obs': obs,
                                 'action': action, 'reward': reward, 'next_obs': next_obs,
                                 'terminated': terminated, 'truncated': truncated,
                                 'timestamp': "timestamp", 'extra': extra})),
       timezone('UTC', now())
FROM stream_judged
WHERE reason IS NOT NULL
