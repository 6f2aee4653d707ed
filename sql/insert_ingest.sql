-- insert_ingest: record one ingest and its counts
INSERT INTO ingests VALUES ($ingest_id, $dataset, $sources, $rows_read, $rows_added,
                            $rows_duplicate, $rows_rejected, $rows_conflicting,
                            timezone('UTC', now()))
