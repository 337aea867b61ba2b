-- 0002: how far the shell history file of each space has been recorded.

-- history_cursor is written in the same transaction as the space.shell audit
-- rows it accounts for, so the two can never disagree after a crash. A row
-- outlives its space on purpose: a space destroyed without its volume and
-- made again finds its old history file, which must not be recorded twice; a
-- new file is told apart by head_hash.
CREATE TABLE history_cursor (
	space     TEXT    PRIMARY KEY,
	offset    INTEGER NOT NULL,  -- bytes of the file already recorded
	size      INTEGER NOT NULL,  -- file size when last read to its end, -1 when not
	mtime_ns  INTEGER NOT NULL,  -- file mtime then, unix nanoseconds, 0 when unknown
	head_hash BLOB    NOT NULL   -- SHA-256 of the first min(offset, 4096) bytes
);
