-- 0003: cached health of the other nodes of the fleet, so /api/nodes answers
-- at once and after a restart. A node that stops answering is kept, offline.
CREATE TABLE nodes (
	name         TEXT    PRIMARY KEY,
	url          TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	latency_ms   INTEGER NOT NULL,
	version      TEXT    NOT NULL,
	capabilities TEXT,            -- JSON, NULL until the node answered once
	last_seen    INTEGER NOT NULL, -- unix ms, 0 when never
	checked_at   INTEGER NOT NULL, -- unix ms
	problem      TEXT    NOT NULL
);
