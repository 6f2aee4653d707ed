-- stream_first_bad: the first refused row in source order (the error of on_error='raise')
SELECT source, source_row, reason FROM stream_judged
WHERE reason IS NOT NULL
ORDER BY source_idx, source_row
LIMIT 1
