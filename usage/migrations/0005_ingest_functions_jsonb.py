"""The ingestion functions take their batch as jsonb instead of one array per column.

psycopg dumps a Python list into a PostgreSQL array literal in Python, element by element (with a
regular expression per text element to escape it): for a 1,000-event batch, twelve arrays cost
about as much client CPU as the whole validation. One `json.dumps` (C) of the rows and one jsonb
parse on the server replace them. Same statements otherwise (migration 0004): the lookup joins
against the batch's ids, the insert share-locks the subscriptions, stores keys and events and folds
the events into the daily rollups; both keep sequential scans off and generic plans."""

import importlib

from django.db import migrations

_0004 = importlib.import_module("usage.migrations.0004_daily_rollups")

LOOKUP_FUNCTION = """
DROP FUNCTION IF EXISTS usage_ingest_lookup(text[], text[], text[], text[], text[]);
CREATE OR REPLACE FUNCTION usage_ingest_lookup(codes jsonb, customer_ids jsonb, sub_ids jsonb, resolve jsonb,
                                               tids jsonb,
                                               OUT metrics json, OUT customers json, OUT subscriptions json,
                                               OUT keys json)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    SELECT
      (SELECT coalesce(json_agg(json_build_array(m.id, m.code, m.aggregation, m.field, m.allow_negative)), '[]'::json)
         FROM jsonb_array_elements_text(codes) AS x(code) JOIN catalog_billablemetric m ON m.code = x.code),
      (SELECT coalesce(json_agg(json_build_array(c.id, c.external_id, c.timezone)), '[]'::json)
         FROM jsonb_array_elements_text(customer_ids) AS x(ext) JOIN customers_customer c ON c.external_id = x.ext),
      (SELECT coalesce(json_agg(json_build_array(s.id, s.external_id, s.customer_id, s.status, s.start_date, s.end_date,
                                                 c.external_id, c.timezone,
                                                 ARRAY(SELECT ch.billable_metric_id FROM catalog_charge ch
                                                       WHERE ch.plan_version_id = s.plan_version_id))), '[]'::json)
         FROM subscriptions_subscription s JOIN customers_customer c ON c.id = s.customer_id
         WHERE s.id IN (SELECT s1.id FROM jsonb_array_elements_text(sub_ids) AS x(ext)
                        JOIN subscriptions_subscription s1 ON s1.external_id = x.ext
                        UNION
                        SELECT s2.id FROM jsonb_array_elements_text(resolve) AS y(ext)
                        JOIN customers_customer c2 ON c2.external_id = y.ext
                        JOIN subscriptions_subscription s2 ON s2.customer_id = c2.id)),
      (SELECT coalesce(json_agg(json_build_array(k.transaction_id, encode(k.payload_hash, 'hex'))), '[]'::json)
         FROM jsonb_array_elements_text(tids) AS x(tid) JOIN usage_event_key k ON k.transaction_id = x.tid)
    INTO metrics, customers, subscriptions, keys;
END
$fn$;
"""

# p_rows: [[transaction_id, payload_hash (hex), customer_id, subscription_id, metric_id, timestamp,
#           local_date, properties (JSON text), value (decimal text or null), unique_value,
#           bucket_start, bucket_end], ...]
INSERT_FUNCTION = """
DROP FUNCTION IF EXISTS usage_ingest_insert(text[], bytea[], bigint[], bigint[], bigint[], timestamptz[], date[],
                                            text[], numeric[], text[], timestamptz[], timestamptz[]);
CREATE OR REPLACE FUNCTION usage_ingest_insert(p_rows jsonb)
RETURNS SETOF text
LANGUAGE plpgsql
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT r->>0 AS transaction_id, decode(r->>1, 'hex') AS payload_hash, (r->>2)::bigint AS customer_id,
               (r->>3)::bigint AS subscription_id, (r->>4)::bigint AS metric_id, (r->>5)::timestamptz AS ts,
               (r->>6)::date AS local_date, (r->>7)::jsonb AS properties, (r->>8)::numeric AS value,
               r->>9 AS unique_value, (r->>10)::timestamptz AS bucket_start, (r->>11)::timestamptz AS bucket_end
        FROM jsonb_array_elements(p_rows) AS x(r)
    ),
    subs AS (
        SELECT s.id, s.usage_billed_through FROM subscriptions_subscription s
        WHERE s.id IN (SELECT i.subscription_id FROM input i) ORDER BY s.id FOR SHARE
    ),
    keys AS (
        INSERT INTO usage_event_key AS k (transaction_id, payload_hash, event_id, event_timestamp, created_at)
        SELECT i.transaction_id, i.payload_hash, nextval('usage_event_id_seq'), i.ts, now() FROM input i
        ON CONFLICT (transaction_id) DO NOTHING
        RETURNING k.transaction_id, k.event_id
    ),
    events AS (
        INSERT INTO usage_event AS e (id, transaction_id, customer_id, subscription_id, metric_id, "timestamp",
                                      properties, value, unique_value, received_at, is_late)
        SELECT k.event_id, i.transaction_id, i.customer_id, i.subscription_id, i.metric_id, i.ts, i.properties,
               i.value, i.unique_value, now(), coalesce(i.local_date < s.usage_billed_through, false)
        FROM input i JOIN keys k ON k.transaction_id = i.transaction_id JOIN subs s ON s.id = i.subscription_id
        RETURNING e.id, e.transaction_id, e.subscription_id, e.metric_id, e."timestamp", e.value, e.unique_value,
                  e.is_late
    ),
    stored AS (
        SELECT e.*, i.customer_id, i.local_date, i.bucket_start, i.bucket_end
        FROM events e JOIN input i ON i.transaction_id = e.transaction_id
    ),
    daily AS (
        INSERT INTO usage_rollup_daily AS r (subscription_id, metric_id, bucket_start, is_late, bucket_end, day,
                                             customer_id, event_count, value_sum, value_max, latest_ts, latest_id,
                                             latest_value, updated_at)
        SELECT d.subscription_id, d.metric_id, d.bucket_start, d.is_late, min(d.bucket_end), min(d.local_date),
               min(d.customer_id), count(*), sum(d.value), max(d.value), max(d."timestamp"),
               (array_agg(d.id ORDER BY d."timestamp" DESC, d.id DESC))[1],
               (array_agg(d.value ORDER BY d."timestamp" DESC, d.id DESC))[1], now()
        FROM stored d
        GROUP BY d.subscription_id, d.metric_id, d.bucket_start, d.is_late
        ORDER BY d.subscription_id, d.metric_id, d.bucket_start, d.is_late
        ON CONFLICT (subscription_id, metric_id, bucket_start, is_late) DO UPDATE SET
            event_count = r.event_count + excluded.event_count,
            value_sum = CASE WHEN excluded.value_sum IS NULL THEN r.value_sum
                             ELSE coalesce(r.value_sum, 0) + excluded.value_sum END,
            value_max = greatest(r.value_max, excluded.value_max),
            latest_value = CASE WHEN r.latest_ts IS NULL OR (excluded.latest_ts, excluded.latest_id) > (r.latest_ts, r.latest_id)
                                THEN excluded.latest_value ELSE r.latest_value END,
            latest_id = CASE WHEN r.latest_ts IS NULL OR (excluded.latest_ts, excluded.latest_id) > (r.latest_ts, r.latest_id)
                             THEN excluded.latest_id ELSE r.latest_id END,
            latest_ts = greatest(r.latest_ts, excluded.latest_ts),
            updated_at = now()
        RETURNING 1
    ),
    uniques AS (
        INSERT INTO usage_rollup_unique AS u (subscription_id, metric_id, bucket_start, is_late, unique_value, bucket_end)
        SELECT DISTINCT d.subscription_id, d.metric_id, d.bucket_start, d.is_late, d.unique_value, d.bucket_end
        FROM stored d WHERE d.unique_value IS NOT NULL
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT e.transaction_id::text FROM events e;
END
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [("usage", "0004_daily_rollups")]

    operations = [
        migrations.RunSQL(LOOKUP_FUNCTION,
                          reverse_sql="DROP FUNCTION IF EXISTS usage_ingest_lookup(jsonb, jsonb, jsonb, jsonb, jsonb);"
                                      + _0004.LOOKUP_FUNCTION),
        migrations.RunSQL(INSERT_FUNCTION,
                          reverse_sql="DROP FUNCTION IF EXISTS usage_ingest_insert(jsonb);" + _0004.INSERT_FUNCTION),
    ]
