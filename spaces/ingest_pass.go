package spaces

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ingestSpace records what is new in the history file of one space, within
// the bounds of one pass and what is left of the space's hour (spent), and
// returns how many commands it recorded and how many bytes it skipped.
//
// Entries are dated by their "#<epoch>" line, clamped into the window the
// pass can vouch for: not before the space was created, nor more than
// HistoryBackdate before the previous pass that saved the cursor, and not
// after now. The time the file claimed is kept in meta
// "reportedTs" when it was moved.
//
// The pass takes the file as its stat found it: what is new is the bytes from
// the cursor (or from 0, for a file truncated or replaced) up to the stat's
// size, of which it reads passLen at most. Events are saved in batches of at
// most batch rows, each with the cursor just past its last command, so a
// failure or a restart part way neither loses nor repeats a command.
func (in *Ingester) ingestSpace(ctx context.Context, name string, created, now time.Time, spent *hourBudget) (recorded int, skipped int64, err error) {
	fi, err := in.eng.StatPath(ctx, name, HistoryFile, false)
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, 0, nil // no history yet, or the space just went away
	case err != nil:
		return 0, 0, fmt.Errorf("reading history file information: %w", err)
	case fi.Type != TypeFile:
		// A symlink or folder is not bash's doing; it is not followed.
		return 0, 0, nil
	}
	cur, err := in.st.HistoryCursor(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	if fi.Size == cur.Size && fi.MTime.Equal(cur.MTime) {
		return 0, 0, nil
	}
	if fi.Size > in.maxFile {
		in.log.Warn("history file too large to ingest", "space", name, "size", fi.Size, "max", in.maxFile)
		// Noted as read, so the warning comes again only when it changes.
		cur.Size, cur.MTime, cur.SavedAt = fi.Size, fi.MTime, now
		return 0, 0, in.st.SaveHistory(ctx, name, cur, nil)
	}
	p := &historyPass{
		in: in, name: name, now: now, fi: fi, cur: cur, spent: spent,
		lo:      datingFloor(created, cur.SavedAt, now),
		maxCmds: max(min(in.passCmds, in.hourCmds-spent.cmds), 0),
	}
	defer p.close()
	ok, err := p.open(ctx)
	if !ok || err != nil {
		return 0, 0, err
	}
	if err := p.readWindow(ctx); err != nil {
		return p.recorded, 0, err
	}
	return p.finish(ctx)
}

// datingFloor is the earliest time an entry of this pass may be dated (see
// ingestSpace): the space's creation, or HistoryBackdate before the
// previous pass that saved the cursor, never after now.
func datingFloor(created, savedAt, now time.Time) time.Time {
	lo := created
	if !savedAt.IsZero() {
		lo = savedAt.Add(-HistoryBackdate)
	}
	if lo.IsZero() || lo.After(now) {
		lo = now
	}
	if lo.Before(created) {
		lo = created
	}
	return lo
}

// historyPass is the reading of one space's history file in one pass of
// the Ingester: it opens the file where the cursor says, reads the window
// the bounds allow chunk by chunk, records the commands up to the command
// bound and counts the rest, and saves the cursor with each batch.
type historyPass struct {
	in    *Ingester
	name  string
	now   time.Time
	lo    time.Time // the earliest time an entry is dated
	fi    FileInfo  // the file as the pass's stat found it
	cur   HistoryCursor
	spent *hourBudget

	maxCmds int
	rc      io.ReadCloser
	head    []byte // the file's first historyHeadBytes
	start   int64  // where the new bytes start
	window  int64  // how much of what is new this pass reads

	// Reading.
	lr      *io.LimitedReader // the rest of the window
	buf     []byte            // the unconsumed bytes read, up to readEnd in the file
	readEnd int64
	realEOF bool // the file ended before the window did
	done    bool // nothing more of the window to read

	// Recording.
	offset   int64   // the end of what is recorded: the cursor's offset
	pending  []Event // recorded at the next save, with offset
	recorded int
	counting bool  // the command bound is reached: commands are counted, not recorded
	counted  int   // complete commands found past the command bound
	countedN int64 // the bytes they (and blank entries) take
}

// open opens the file, reads its head, and sets where the new bytes start
// and the window of this pass. It reports false when the file is gone or
// no longer a file, which is no failure.
func (p *historyPass) open(ctx context.Context) (bool, error) {
	in := p.in
	p.start = p.cur.Offset
	if p.fi.Size < p.start {
		p.start = 0 // truncated
	}
	if ok, err := p.openAt(ctx, 0); !ok || err != nil {
		return ok, err
	}
	head := make([]byte, historyHeadBytes)
	hn, err := io.ReadFull(p.rc, head)
	p.head = head[:hn]
	headEOF := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !headEOF {
		return false, fmt.Errorf("reading history file: %w", err)
	}
	if p.start > 0 {
		n := min(p.start, historyHeadBytes)
		if int64(len(p.head)) < n || !bytes.Equal(headHash(p.head[:n]), p.cur.HeadHash) {
			p.start = 0 // replaced: what was recorded is not the start of this file
		}
	}

	window := max(min(p.fi.Size-p.start, in.passLen, in.hourLen-p.spent.read), 0)
	p.window = window
	p.spent.read += window
	p.readEnd, p.offset = p.start, p.start
	if p.start <= int64(len(p.head)) {
		n := min(int64(len(p.head))-p.start, window)
		p.buf = append(make([]byte, 0, max(min(int64(in.chunk), window), n)), p.head[p.start:p.start+n]...)
		p.readEnd += n
		p.realEOF = headEOF && p.readEnd == int64(len(p.head))
	} else {
		// The rest is read from where it starts, not through what is
		// before it: a large (or sparse) file costs only what is new.
		p.rc.Close()
		p.rc = nil
		if ok, err := p.openAt(ctx, p.start); !ok || err != nil {
			return ok, err
		}
		p.buf = make([]byte, 0, min(int64(in.chunk), window))
	}
	p.lr = &io.LimitedReader{R: p.rc, N: p.start + window - p.readEnd}
	p.done = p.realEOF || p.lr.N == 0
	return true, nil
}

// openAt opens the history file at offset; false when it is gone, or
// replaced by something other than a file since the stat.
func (p *historyPass) openAt(ctx context.Context, offset int64) (bool, error) {
	_, rc, err := p.in.eng.OpenFile(ctx, p.name, HistoryFile, offset)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrForbidden) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading history file: %w", err)
	}
	p.rc = rc
	return true, nil
}

func (p *historyPass) close() {
	if p.rc != nil {
		p.rc.Close()
	}
}

// readWindow reads the window chunk by chunk and takes the entries of
// each.
func (p *historyPass) readWindow(ctx context.Context) error {
	for {
		if err := p.readChunk(); err != nil {
			return err
		}
		// The last entry of the window is complete only where the file
		// ends; where the byte bound cuts it, it is skipped.
		final := p.realEOF || (p.done && p.readEnd == p.fi.Size)
		n, err := p.take(ctx, p.buf, final)
		if err != nil {
			return err
		}
		if n == 0 && !p.done && len(p.buf) == cap(p.buf) {
			if n, err = p.takeOversized(ctx); err != nil {
				return err
			}
		}
		p.buf = p.buf[:copy(p.buf, p.buf[n:])]
		if p.done {
			return nil
		}
	}
}

// readChunk fills buf from the window, noting where the window or the file
// ends.
func (p *historyPass) readChunk() error {
	if p.done {
		return nil
	}
	n, err := io.ReadFull(p.lr, p.buf[len(p.buf):cap(p.buf)])
	p.buf = p.buf[:len(p.buf)+n]
	p.readEnd += int64(n)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		p.realEOF, p.done = p.lr.N > 0, true
	case err != nil:
		return fmt.Errorf("reading history file: %w", err)
	}
	p.done = p.done || p.lr.N == 0
	return nil
}

// takeOversized handles one entry larger than a chunk: it takes what fits;
// the rest of it reads as commands without a time.
func (p *historyPass) takeOversized(ctx context.Context) (int, error) {
	p.in.log.Warn("history entry larger than a chunk", "space", p.name, "offset", p.readEnd-int64(len(p.buf)), "chunk", len(p.buf))
	n, err := p.take(ctx, p.buf, true)
	if err != nil || n > 0 {
		return n, err
	}
	n = len(p.buf) // one line larger than a chunk: garbage
	if p.counting {
		p.countedN += int64(n)
	} else {
		p.offset += int64(n)
	}
	return n, nil
}

// take records the commands of data, up to the bounds, then counts the
// rest; it returns how many bytes of data it consumed.
func (p *historyPass) take(ctx context.Context, data []byte, atEOF bool) (int, error) {
	used := 0
	for !p.counting {
		left := p.maxCmds - p.recorded - len(p.pending)
		if left == 0 {
			p.counting = true
			break
		}
		entries, n := parseHistoryN(data[used:], atEOF, min(left, p.in.batch-len(p.pending)))
		if n == 0 {
			break
		}
		used += n
		p.offset += int64(n)
		for _, e := range entries {
			p.pending = append(p.pending, shellEvent(p.name, e, p.lo, p.now))
		}
		if len(p.pending) == p.in.batch {
			if err := p.flush(ctx); err != nil {
				return used, err
			}
		}
	}
	if p.counting {
		k, n := countHistory(data[used:], atEOF)
		p.counted += k
		p.countedN += int64(n)
		used += n
	}
	return used, nil
}

// cursorAt is the cursor of a save part way: the file is not read to its
// end (Size -1).
func (p *historyPass) cursorAt(off int64) HistoryCursor {
	return HistoryCursor{Offset: off, Size: -1, HeadHash: p.headHash(off), SavedAt: p.now}
}

func (p *historyPass) headHash(off int64) []byte {
	return headHash(p.head[:min(off, int64(len(p.head)))])
}

// flush saves the pending events with the cursor just past them.
func (p *historyPass) flush(ctx context.Context) error {
	if err := p.in.st.SaveHistory(ctx, p.name, p.cursorAt(p.offset), p.pending); err != nil {
		return err
	}
	p.recorded += len(p.pending)
	p.spent.cmds += len(p.pending)
	p.pending = nil
	return nil
}

// finish saves the last batch with the cursor at the end of what was read,
// and a space.shell.skipped row for what the bounds left out.
func (p *historyPass) finish(ctx context.Context) (recorded int, skipped int64, err error) {
	end := HistoryCursor{Offset: p.offset, Size: p.fi.Size, MTime: p.fi.MTime, SavedAt: p.now}
	var beyond int64 // bytes of the file the byte bound left unread
	if !p.realEOF {
		beyond = max(p.fi.Size-p.readEnd, 0)
	}
	if beyond == 0 && p.counted == 0 {
		end.HeadHash = p.headHash(p.offset)
		if err := p.in.st.SaveHistory(ctx, p.name, end, p.pending); err != nil {
			return p.recorded, 0, err
		}
		p.spent.cmds += len(p.pending)
		return p.recorded + len(p.pending), 0, nil
	}

	// Skipped: everything from offset on, up to the stat's size when bytes
	// were left unread; else up to what was read, less a line still being
	// written.
	end.Offset = p.readEnd - int64(len(p.buf))
	if beyond > 0 {
		end.Offset = p.fi.Size
	}
	end.HeadHash = p.headHash(end.Offset)
	skipped = end.Offset - p.offset
	// Commands are counted up to where the bounds stopped the reading; the
	// bytes past that (an entry the byte bound cut, and those not read)
	// are taken to hold as many commands a byte as those before.
	commands := int64(p.counted)
	seen, seenN := int64(p.recorded+len(p.pending)+p.counted), p.offset-p.start+p.countedN
	if rest := skipped - p.countedN; rest > 0 && seenN > 0 {
		commands += rest * seen / seenN
	}
	meta := map[string]any{"bytes": skipped}
	if commands > 0 {
		meta["commands"] = commands
	}
	if len(p.pending)+1 > p.in.batch {
		if err := p.flush(ctx); err != nil {
			return p.recorded, 0, err
		}
	}
	skip := Event{Type: EventShellSkipped, Space: p.name, Actor: ShellActor, Time: p.now, Meta: meta}
	if err := p.in.st.SaveHistory(ctx, p.name, end, append(p.pending, skip)); err != nil {
		return p.recorded, 0, err
	}
	p.recorded += len(p.pending)
	p.spent.cmds += len(p.pending)
	p.in.log.Warn("shell history past the bounds of a pass skipped", "space", p.name,
		"bytes", skipped, "commands", commands, "maxCommands", p.maxCmds, "maxBytes", p.window)
	return p.recorded, skipped, nil
}
