-- 0007: forwarded ports. A space's TCP port is served on the node's
-- tailnet address at node_port; the assignment survives restarts.
CREATE TABLE forwards (
	space      TEXT    NOT NULL,
	port       INTEGER NOT NULL,
	node_port  INTEGER NOT NULL UNIQUE,
	https      INTEGER NOT NULL DEFAULT 0,
	created_by TEXT    NOT NULL,
	created_at INTEGER NOT NULL, -- unix ms
	PRIMARY KEY (space, port)
);
