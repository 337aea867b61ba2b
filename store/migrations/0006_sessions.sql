-- 0005: dashboard sessions. The browser's cookie holds a random token; only
-- its SHA-256 is stored, with the SHA-256 of the API key it was issued
-- under, so changing the key ends every session.
CREATE TABLE sessions (
	token_hash BLOB    PRIMARY KEY,
	key_hash   BLOB    NOT NULL,
	issued_at  INTEGER NOT NULL, -- unix ms: when this token was issued (rotation)
	expires_at INTEGER NOT NULL  -- unix ms
);
CREATE INDEX sessions_expires ON sessions (expires_at);
