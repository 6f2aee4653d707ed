-- stream_counts: rows refused and landing, episodes, and landing rows that carry next_obs
SELECT count(*) FILTER (WHERE reason IS NOT NULL) AS bad,
       count(*) FILTER (WHERE reason IS NULL) AS good,
       count(next_obs) FILTER (WHERE reason IS NULL) AS with_next,
       count(DISTINCT episode_id) FILTER (WHERE reason IS NULL) AS episodes
FROM stream_judged
