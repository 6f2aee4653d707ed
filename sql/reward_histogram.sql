-- reward_histogram: a dataset's finite rewards counted in $bins equal-width bins over [min, max] (numpy.histogram's bins; the maximum falls in the last bin); one row per non-empty bin
WITH finite AS (
    SELECT reward FROM transitions WHERE dataset = $dataset AND isfinite(reward)
),
span AS (
    SELECT min(reward) AS lo, max(reward) AS hi, count(*) AS n FROM finite
)
SELECT span.lo,
       span.hi,
       span.n,
       CASE WHEN span.hi > span.lo
            THEN least(floor((finite.reward - span.lo) / (span.hi - span.lo) * $bins), $bins - 1)
            ELSE 0
       END::BIGINT AS bin,
       count(*) AS count
FROM finite, span
GROUP BY ALL
ORDER BY bin
