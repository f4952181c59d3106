-- usage.rollups.usage_rollups_rebuild() for the whole table (benches that generate events with SQL)
DELETE FROM usage_rollup_unique;
DELETE FROM usage_rollup_daily;
INSERT INTO usage_rollup_daily (subscription_id, metric_id, bucket_start, is_late, bucket_end, day, customer_id,
                                    event_count, value_sum, value_max, latest_ts, latest_id, latest_value, updated_at)
    SELECT e.subscription_id, e.metric_id, (b.day::timestamp AT TIME ZONE c.timezone), e.is_late,
           ((b.day + 1)::timestamp AT TIME ZONE c.timezone), b.day, min(e.customer_id), count(*), sum(e.value),
           max(e.value), max(e."timestamp"), (array_agg(e.id ORDER BY e."timestamp" DESC, e.id DESC))[1],
           (array_agg(e.value ORDER BY e."timestamp" DESC, e.id DESC))[1], now()
    FROM usage_event e JOIN customers_customer c ON c.id = e.customer_id
    CROSS JOIN LATERAL (SELECT (e."timestamp" AT TIME ZONE c.timezone)::date AS day) b
    WHERE true 
    GROUP BY e.subscription_id, e.metric_id, c.timezone, b.day, e.is_late;
INSERT INTO usage_rollup_unique (subscription_id, metric_id, bucket_start, is_late, unique_value, bucket_end)
    SELECT DISTINCT e.subscription_id, e.metric_id, (b.day::timestamp AT TIME ZONE c.timezone), e.is_late,
           e.unique_value, ((b.day + 1)::timestamp AT TIME ZONE c.timezone)
    FROM usage_event e JOIN customers_customer c ON c.id = e.customer_id
    CROSS JOIN LATERAL (SELECT (e."timestamp" AT TIME ZONE c.timezone)::date AS day) b
    WHERE e.unique_value IS NOT NULL;
