-- 0004: operations on a space that the node began and had not answered
-- (create, destroy). A crash leaves the row; the next start finishes or
-- undoes the operation and deletes it. One per space at most.
CREATE TABLE intents (
	space      TEXT    PRIMARY KEY,
	kind       TEXT    NOT NULL,
	node_run   TEXT    NOT NULL,
	detail     TEXT    NOT NULL, -- JSON: volumeExisted (create), removeVolume (destroy)
	created_at INTEGER NOT NULL  -- unix ms
);
