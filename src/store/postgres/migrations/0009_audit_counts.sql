-- Sign-ins and failures counted per minute as they are written, so the console's overview
-- reads at most 1,440 rows a day per kind rather than counting events. Each write adds to one
-- of 16 shards of its minute, so concurrent sign-ins across the nodes do not queue on one row;
-- readers sum the shards. Additive: an older node neither reads nor writes it (its sign-ins go
-- uncounted until it is upgraded).
CREATE TABLE audit_counts (
    event text NOT NULL,
    minute_ms bigint NOT NULL,
    shard smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (event, minute_ms, shard)
);
INSERT INTO audit_counts (event, minute_ms, shard, n)
SELECT data->>'event', time_ms - time_ms % 60000, 0, count(*)
FROM audit WHERE data->>'event' IN ('user.logged_in', 'user.login_failed')
GROUP BY 1, 2;
