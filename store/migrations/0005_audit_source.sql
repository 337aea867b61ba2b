-- 0004: who vouches for an audit row, and when each history cursor was
-- last written.

-- source is 'node' for what the node itself did or saw, 'space' for what a
-- space reported about itself (its shell history): such rows say what code
-- in the space wrote, which may be false.
ALTER TABLE audit ADD COLUMN source TEXT NOT NULL DEFAULT 'node';

-- saved_at is the unix milliseconds of the pass that last saved the cursor:
-- new history entries are dated no earlier than that.
ALTER TABLE history_cursor ADD COLUMN saved_at INTEGER NOT NULL DEFAULT 0;
