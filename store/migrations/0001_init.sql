-- 0001: audit log, templates and per-space activity.

-- audit is append-only. id is the rowid, so "ORDER BY id DESC LIMIT n" walks
-- the table's own b-tree backwards and stops after n rows; no extra index is
-- needed for the unfiltered listing.
CREATE TABLE audit (
	id    INTEGER PRIMARY KEY,
	ts    INTEGER NOT NULL,          -- unix milliseconds
	space TEXT    NOT NULL DEFAULT '', -- '' for events not about one space
	type  TEXT    NOT NULL,
	actor TEXT    NOT NULL DEFAULT '',
	meta  TEXT                       -- JSON object, NULL when empty
);

-- audit_space_id serves "WHERE space = ? ORDER BY id DESC LIMIT n" without a
-- sort: rows of one space are already in id order inside the index.
CREATE INDEX audit_space_id ON audit (space, id);

CREATE TABLE templates (
	name       TEXT    PRIMARY KEY,
	yaml       TEXT    NOT NULL,
	managed    INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL      -- unix milliseconds
);

CREATE TABLE space_activity (
	space         TEXT PRIMARY KEY,
	last_activity INTEGER,           -- unix milliseconds, NULL when unknown
	started_at    INTEGER            -- unix milliseconds, NULL when unknown
);
