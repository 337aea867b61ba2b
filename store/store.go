// Package store is the SQLite adapter of the spaces domain: it keeps the
// audit log, the templates and the activity of each space in one local
// database file.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ spaces.Store = (*Store)(nil)

// basePragmas apply to every connection. busy_timeout comes first so that the
// others wait for a lock instead of failing with SQLITE_BUSY.
const basePragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)&_pragma=foreign_keys(1)&_pragma=synchronous(normal)"

// rwParams makes every transaction of the write handle BEGIN IMMEDIATE, so a
// transaction that reads and then writes cannot fail on a lock upgrade.
const rwParams = basePragmas + "&_txlock=immediate"

// roParams makes the read handle refuse writes, so a query routed to the wrong
// handle fails loudly instead of racing the writer.
const roParams = basePragmas + "&_pragma=query_only(1)"

// Config configures a Store.
type Config struct {
	// Path is the database file. Its folder is created (0700) when missing.
	Path string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// Store is the SQLite implementation of spaces.Store. It is safe for
// concurrent use.
type Store struct {
	// rw has a single connection: SQLite allows one writer at a time, and
	// queuing writers in database/sql is cheaper than spinning on busy_timeout.
	rw *sql.DB
	// ro is a pool of read-only connections; in WAL mode readers never block
	// the writer nor each other.
	ro  *sql.DB
	log *slog.Logger
	// dir holds the database, for telling a full disk from other I/O
	// errors.
	dir string
}

// New opens (creating when missing) the database at cfg.Path and brings its
// schema up to date.
func New(ctx context.Context, cfg Config) (_ *Store, err error) {
	// On a full disk SQLite often says only "disk I/O error".
	defer func() {
		if err != nil && isFull(err, filepath.Dir(cfg.Path)) {
			err = fmt.Errorf("%w: %w", spaces.ErrDiskFull, err)
		}
	}()
	if cfg.Path == "" {
		return nil, errors.New("opening store: path is required")
	}
	// The driver splits the DSN at the first '?', so such a path would be cut.
	if strings.ContainsRune(cfg.Path, '?') {
		return nil, fmt.Errorf("opening store: path %q must not contain '?'", cfg.Path)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store folder: %w", err)
	}

	rw, err := openDB(ctx, cfg.Path+"?"+rwParams, 1)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	// Migrate before the read handle exists, so it only ever sees a complete
	// schema (and journal_mode=wal is already persisted in the file).
	if err := migrate(ctx, rw, log); err != nil {
		rw.Close()
		return nil, fmt.Errorf("migrating store: %w", err)
	}
	ro, err := openDB(ctx, cfg.Path+"?"+roParams, max(4, runtime.GOMAXPROCS(0)))
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("opening store for reading: %w", err)
	}
	return &Store{rw: rw, ro: ro, log: log, dir: filepath.Dir(cfg.Path)}, nil
}

// openDB opens a handle with at most conns connections and checks that the
// file can actually be opened.
func openDB(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// Connections are cheap to keep and costly to reopen (pragmas, WAL index).
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes both database handles.
func (s *Store) Close() error {
	errRO := s.ro.Close()
	errRW := s.rw.Close()
	if err := errors.Join(errRO, errRW); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	return nil
}

// toMillis returns t as unix milliseconds; the zero time is 0, so that it
// reads back as the zero time.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis is the inverse of toMillis; NULL and 0 are the zero time.
func fromMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid || ms.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}
