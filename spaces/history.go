package spaces

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// HistoryFile is the bash history of a space. The sandbox image points every
// interactive bash at it, with HISTTIMEFORMAT='%s ' and a flush after every
// command.
const HistoryFile = WorkspacePath + "/.bash_history"

// maxHistoryEpoch is the last second of year 9999: a larger timestamp is
// garbage, and would overflow the store's milliseconds.
const maxHistoryEpoch = 253402300799

// HistoryEntry is one command of a bash history file.
type HistoryEntry struct {
	// Command is the command line; the lines of a multi-line command are
	// joined with "\n".
	Command string
	// Time is when the command ran, the zero time when the file does not say.
	Time time.Time
}

// ParseHistory parses a bash history file written with HISTTIMEFORMAT set:
// a "#<epoch>" line before each command, whose lines run up to the next
// such line. Lines before the first timestamp are commands of their own,
// without a time, as bash writes them when HISTTIMEFORMAT is unset. A "#"
// line with anything but digits after the "#" is a command line (a comment).
//
// consumed is how many bytes of data the entries account for; parsing more
// of the file must start there. A trailing line without "\n" is never
// consumed, nor is the entry it belongs to, nor a final timestamp whose
// command has not been written yet.
// Entries whose command is empty are consumed but not returned.
func ParseHistory(data []byte) (entries []HistoryEntry, consumed int) {
	return parseHistory(data, true)
}

// MaxHistoryBatch is the most events one SaveHistory may record: history is
// written in transactions this small, so other writers get the store's one
// write connection between them.
const MaxHistoryBatch = 500

// parseHistory is ParseHistory; when atEOF is false, more of the file
// follows data, so the last timestamped entry may not be complete and is
// left unconsumed.
func parseHistory(data []byte, atEOF bool) (entries []HistoryEntry, consumed int) {
	return parseHistoryN(data, atEOF, -1)
}

// parseHistoryN is parseHistory that stops after limit entries (no limit
// when limit is negative); consumed then ends with the last entry returned.
func parseHistoryN(data []byte, atEOF bool, limit int) (entries []HistoryEntry, consumed int) {
	if limit == 0 {
		return nil, 0
	}
	consumed = scanHistory(data, atEOF, func(lines [][]byte, when time.Time) bool {
		if cmd := joinCommand(lines); cmd != "" {
			entries = append(entries, HistoryEntry{Command: cmd, Time: when})
		}
		return limit < 0 || len(entries) < limit
	})
	return entries, consumed
}

// countHistory is how many entries parseHistory would return for data, and
// the bytes they account for, without keeping them: the ingester counts
// what it skips without holding it.
func countHistory(data []byte, atEOF bool) (n, consumed int) {
	consumed = scanHistory(data, atEOF, func(lines [][]byte, _ time.Time) bool {
		for _, l := range lines {
			if len(bytes.TrimSpace(l)) > 0 {
				n++
				break
			}
		}
		return true
	})
	return n, consumed
}

// scanHistory calls entry with the command lines and the time of each
// complete entry of data, in order, until entry returns false; it returns
// how many bytes of data the entries it called entry with account for. The
// lines are slices of data, and the slice holding them is reused: entry
// must not keep either.
func scanHistory(data []byte, atEOF bool, entry func(lines [][]byte, when time.Time) bool) (consumed int) {
	var (
		open  bool // a timestamp line started an entry that is not closed yet
		when  time.Time
		lines [][]byte
		one   = make([][]byte, 1)
	)
	pos := 0
	for {
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			break
		}
		line, next := data[pos:pos+nl], pos+nl+1
		switch ts, isTS := timestampLine(line); {
		case isTS:
			if open {
				consumed = pos
				if !entry(lines, when) {
					return consumed
				}
				lines = lines[:0]
			}
			open, when = true, ts
		case open:
			lines = append(lines, line)
		default:
			consumed = next
			one[0] = line
			if !entry(one, time.Time{}) {
				return consumed
			}
		}
		pos = next
	}
	// The last entry is complete only at the end of the file, and not while
	// a line of it is still being written.
	if open && atEOF && pos == len(data) && len(lines) > 0 {
		consumed = pos
		entry(lines, when)
	}
	return consumed
}

// timestampLine reports whether line is "#<digits>", and its time: the zero
// time when the number is out of range.
func timestampLine(line []byte) (time.Time, bool) {
	if len(line) < 2 || line[0] != '#' {
		return time.Time{}, false
	}
	for _, c := range line[1:] {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	sec, err := strconv.ParseInt(string(line[1:]), 10, 64)
	if err != nil || sec > maxHistoryEpoch {
		return time.Time{}, true
	}
	return time.Unix(sec, 0).UTC(), true
}

// joinCommand joins the lines of one command without the empty lines around
// it; a command of only blanks is "".
func joinCommand(lines [][]byte) string {
	cmd := strings.Trim(string(bytes.Join(lines, []byte{'\n'})), "\n")
	if strings.TrimSpace(cmd) == "" {
		return ""
	}
	return cmd
}
