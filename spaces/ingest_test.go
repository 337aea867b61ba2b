package spaces_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// historyEngine serves history files from memory; the node package's tests
// run the same ingester against the real engine.
type historyEngine struct {
	spaces.Engine
	mu      sync.Mutex
	status  map[string]spaces.Status
	files   map[string]*fakeFile
	statErr map[string]error
	stats   int
	reads   int
	tick    time.Time
}

type fakeFile struct {
	data    []byte
	mtime   time.Time
	symlink bool
}

func newHistoryEngine() *historyEngine {
	return &historyEngine{
		status:  map[string]spaces.Status{},
		files:   map[string]*fakeFile{},
		statErr: map[string]error{},
		tick:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (f *historyEngine) List(context.Context) ([]spaces.Space, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []spaces.Space
	for name, st := range f.status {
		out = append(out, spaces.Space{Name: name, Status: st, Created: spaceCreated})
	}
	return out, nil
}

func (f *historyEngine) StatPath(_ context.Context, name, p string, _ bool) (spaces.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats++
	if err := f.statErr[name]; err != nil {
		return spaces.FileInfo{}, err
	}
	file, ok := f.files[name]
	if !ok || p != spaces.HistoryFile {
		return spaces.FileInfo{}, spaces.Errorf(spaces.ErrNotFound, "No such file or folder: %s", p)
	}
	return file.info(p), nil
}

func (f *historyEngine) OpenFile(_ context.Context, name, p string, offset int64) (spaces.FileInfo, io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	file, ok := f.files[name]
	if !ok || p != spaces.HistoryFile {
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrNotFound, "No such file or folder: %s", p)
	}
	if file.symlink {
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrForbidden, "%s is a symlink that points outside /workspace", p)
	}
	return file.info(p), io.NopCloser(bytes.NewReader(bytes.Clone(file.data[min(offset, int64(len(file.data))):]))), nil
}

func (file *fakeFile) info(p string) spaces.FileInfo {
	fi := spaces.FileInfo{Name: ".bash_history", Path: p, Type: spaces.TypeFile, Size: int64(len(file.data)), MTime: file.mtime}
	if file.symlink {
		fi.Type, fi.LinkTarget = spaces.TypeSymlink, "/etc/passwd"
	}
	return fi
}

// set replaces the history file of name; each change moves its mtime on.
func (f *historyEngine) set(name, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tick = f.tick.Add(time.Millisecond)
	f.files[name] = &fakeFile{data: []byte(data), mtime: f.tick}
	if _, ok := f.status[name]; !ok {
		f.status[name] = spaces.StatusRunning
	}
}

func (f *historyEngine) append(name, data string) {
	f.mu.Lock()
	old := string(f.files[name].data)
	f.mu.Unlock()
	f.set(name, old+data)
}

func (f *historyEngine) counts() (stats, reads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.reads
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// passTime is the time of every pass: shortly after the entries the tests
// write (#1700000000 on), inside the window the ingester dates them into.
var passTime = time.Unix(1700003000, 0).UTC()

// spaceCreated is when every space of historyEngine was made.
var spaceCreated = time.Unix(1600000000, 0).UTC()

// flakyStore fails the next failSaves calls of SaveHistory, after the next
// okSaves calls, and notes how many events each call that succeeds records.
type flakyStore struct {
	*store.Store
	mu        sync.Mutex
	failSaves int
	okSaves   int
	batches   []int
}

func (s *flakyStore) SaveHistory(ctx context.Context, space string, cur spaces.HistoryCursor, events []spaces.Event) error {
	s.mu.Lock()
	fail := s.okSaves == 0 && s.failSaves > 0
	switch {
	case s.okSaves > 0:
		s.okSaves--
	case fail:
		s.failSaves--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	err := s.Store.SaveHistory(ctx, space, cur, events)
	if err == nil {
		s.mu.Lock()
		s.batches = append(s.batches, len(events))
		s.mu.Unlock()
	}
	return err
}

// largestBatch is the most events one successful SaveHistory recorded.
func (s *flakyStore) largestBatch() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.batches {
		n = max(n, b)
	}
	return n
}

type ingestEnv struct {
	eng   *historyEngine
	st    *flakyStore
	path  string
	svc   *spaces.Service
	ingst *spaces.Ingester
}

func newIngestEnv(t *testing.T, cfg spaces.IngesterConfig) *ingestEnv {
	t.Helper()
	env := &ingestEnv{eng: newHistoryEngine(), path: filepath.Join(t.TempDir(), "db")}
	env.open(t, cfg)
	return env
}

// open (re)opens the store and builds a new service and ingester, as a
// restarted node does.
func (env *ingestEnv) open(t *testing.T, cfg spaces.IngesterConfig) {
	t.Helper()
	st, err := store.New(t.Context(), store.Config{Path: env.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env.st = &flakyStore{Store: st}
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: env.eng, Store: env.st, Clock: fixedClock{passTime}})
	if err != nil {
		t.Fatal(err)
	}
	env.svc = svc
	cfg.Service = svc
	env.ingst = spaces.NewIngester(cfg)
	t.Cleanup(env.ingst.Close)
}

func (env *ingestEnv) ingest(t *testing.T) {
	t.Helper()
	if err := env.ingst.IngestOnce(t.Context()); err != nil {
		t.Fatalf("IngestOnce: %v", err)
	}
}

// shell returns the space.shell events of space as "time command" lines.
func (env *ingestEnv) shell(t *testing.T, space string) []string {
	t.Helper()
	events, err := env.st.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		if e.Type != spaces.EventShell {
			t.Errorf("unexpected %s event", e.Type)
			continue
		}
		if e.Actor != spaces.ShellActor {
			t.Errorf("actor = %q, want %q", e.Actor, spaces.ShellActor)
		}
		out = append(out, fmt.Sprintf("%d %v", e.Time.Unix(), e.Meta["command"]))
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestIngesterRecordsOnlyNewCommands(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	env.eng.set("a", "#1700000000\necho one\n#1700000001\necho two\n")
	env.ingest(t)
	wantLines(t, "first pass", env.shell(t, "a"), "1700000000 echo one", "1700000001 echo two")
	act, err := env.st.Activity(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := act["a"].LastActivity; !got.Equal(passTime) {
		t.Errorf("last activity = %v, want the pass time %v", got, passTime)
	}

	_, readsBefore := env.eng.counts()
	env.ingest(t)
	if _, reads := env.eng.counts(); reads != readsBefore {
		t.Errorf("an unchanged file was read again (%d reads, was %d)", reads, readsBefore)
	}

	env.eng.append("a", "#1700000002\nfor i in 1 2; do\n  echo $i\ndone\n#1700000003\necho thr")
	env.ingest(t)
	wantLines(t, "after append", env.shell(t, "a"),
		"1700000000 echo one", "1700000001 echo two", "1700000002 for i in 1 2; do\n  echo $i\ndone")

	env.eng.append("a", "ee\n")
	env.ingest(t)
	env.ingest(t)
	wantLines(t, "after the partial line ends", env.shell(t, "a"),
		"1700000000 echo one", "1700000001 echo two", "1700000002 for i in 1 2; do\n  echo $i\ndone", "1700000003 echo three")
}

func TestIngesterResumesAfterRestart(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	env.eng.set("a", "#1700000000\necho one\n")
	env.ingest(t)
	env.st.Close()

	env.open(t, spaces.IngesterConfig{})
	env.ingest(t)
	wantLines(t, "after a restart", env.shell(t, "a"), "1700000000 echo one")
	env.eng.append("a", "#1700000001\necho two\n")
	env.ingest(t)
	wantLines(t, "after a restart and an append", env.shell(t, "a"), "1700000000 echo one", "1700000001 echo two")
}

func TestIngesterTruncatedOrReplacedFile(t *testing.T) {
	const first = "#1700000000\necho one\n#1700000001\necho two\n"
	tests := []struct {
		name string
		next string
		want []string
	}{
		{
			name: "truncated to empty, then written",
			next: "#1700000100\nls\n",
			want: []string{"1700000100 ls"},
		},
		{
			name: "replaced by a file of the same size",
			next: "#1700000100\necho uno\n#1700000101\necho dos\n",
			want: []string{"1700000100 echo uno", "1700000101 echo dos"},
		},
		{
			name: "replaced by a longer file",
			next: "#1700000100\necho other\n#1700000101\necho and more\n#1700000102\necho still more\n",
			want: []string{"1700000100 echo other", "1700000101 echo and more", "1700000102 echo still more"},
		},
		{
			name: "rewritten with the same start: an append",
			next: first + "#1700000002\necho three\n",
			want: []string{"1700000002 echo three"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newIngestEnv(t, spaces.IngesterConfig{})
			env.eng.set("a", first)
			env.ingest(t)
			env.eng.set("a", tt.next)
			env.ingest(t)
			want := append([]string{"1700000000 echo one", "1700000001 echo two"}, tt.want...)
			wantLines(t, "events", env.shell(t, "a"), want...)
		})
	}
}

func TestIngesterSkipsSpacesNotRunning(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	env.eng.set("paused", "#1700000000\necho p\n")
	env.eng.set("stopped", "#1700000000\necho s\n")
	env.eng.status["paused"] = spaces.StatusPaused
	env.eng.status["stopped"] = spaces.StatusStopped
	env.ingest(t)
	if stats, reads := env.eng.counts(); stats != 0 || reads != 0 {
		t.Errorf("%d stats and %d reads of spaces that do not run, want none", stats, reads)
	}
	wantLines(t, "paused", env.shell(t, "paused"))
	wantLines(t, "stopped", env.shell(t, "stopped"))
}

// TestIngesterOnlyItsSpaces: with Only, the spaces it refuses are not
// read at all (another node's spaces on a shared engine).
func TestIngesterOnlyItsSpaces(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{Only: func(name string) bool { return name == "mine" }})
	env.eng.set("mine", "#1700000000\necho m\n")
	env.eng.set("theirs", "#1700000000\necho t\n")
	env.ingest(t)
	wantLines(t, "mine", env.shell(t, "mine"), "1700000000 echo m")
	wantLines(t, "theirs", env.shell(t, "theirs"))
	if stats, reads := env.eng.counts(); stats != 1 || reads != 1 {
		t.Errorf("%d stats and %d reads, want one of each (mine only)", stats, reads)
	}
}

func TestIngesterOneFailingSpaceDoesNotStopOthers(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	for _, name := range []string{"a", "b", "c"} {
		env.eng.set(name, "#1700000000\necho "+name+"\n")
	}
	env.eng.statErr["b"] = errors.New("engine hiccup")
	err := env.ingst.IngestOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "space b") || !strings.Contains(err.Error(), "engine hiccup") {
		t.Errorf("IngestOnce = %v, want the failure of b", err)
	}
	wantLines(t, "a", env.shell(t, "a"), "1700000000 echo a")
	wantLines(t, "c", env.shell(t, "c"), "1700000000 echo c")

	delete(env.eng.statErr, "b")
	env.ingest(t)
	wantLines(t, "b, once it works", env.shell(t, "b"), "1700000000 echo b")
}

func TestIngesterFailedSaveIsRetried(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	env.eng.set("a", "#1700000000\necho one\n")
	env.st.failSaves = 1
	if err := env.ingst.IngestOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("IngestOnce = %v, want the save failure", err)
	}
	wantLines(t, "after the failed save", env.shell(t, "a"))
	env.eng.append("a", "#1700000001\necho two\n")
	env.ingest(t)
	env.ingest(t)
	wantLines(t, "after the retry", env.shell(t, "a"), "1700000000 echo one", "1700000001 echo two")
}

func TestIngesterReadsInChunks(t *testing.T) {
	var b strings.Builder
	var want []string
	for i := range 40 {
		fmt.Fprintf(&b, "#%d\n", 1700000000+i)
		cmd := fmt.Sprintf("echo %d", i)
		if i%3 == 0 {
			cmd = fmt.Sprintf("cat <<EOF\nline %d\nof a heredoc\nEOF", i)
		}
		b.WriteString(cmd + "\n")
		want = append(want, fmt.Sprintf("%d %s", 1700000000+i, cmd))
	}
	env := newIngestEnv(t, spaces.IngesterConfig{ChunkBytes: 64})
	env.eng.set("a", b.String())
	env.ingest(t)
	wantLines(t, "events", env.shell(t, "a"), want...)
	cur, err := env.st.HistoryCursor(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Offset != int64(b.Len()) || cur.Size != int64(b.Len()) {
		t.Errorf("cursor = %+v, want offset and size %d", cur, b.Len())
	}
}

func TestIngesterEntryLargerThanAChunk(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{ChunkBytes: 64})
	long := strings.Repeat("x", 200)
	env.eng.set("a", "#1700000000\necho "+long+"\n#1700000001\necho after\n")
	env.ingest(t) // must end, and go on after the long line
	got := env.shell(t, "a")
	if len(got) == 0 || got[len(got)-1] != "1700000001 echo after" {
		t.Errorf("events = %q, want the last to be echo after", got)
	}
	env.ingest(t)
	if again := env.shell(t, "a"); len(again) != len(got) {
		t.Errorf("a second pass recorded %d more events", len(again)-len(got))
	}
}

func TestIngesterEventContent(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{})
	long := "echo " + strings.Repeat("✓", 2000) // 6005 bytes
	env.eng.set("a", "untimed\n#1700000000\n"+long+"\n")
	env.ingest(t)
	events, err := env.st.Events(t.Context(), spaces.AuditQuery{Space: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	if e := events[0]; !e.Time.Equal(passTime) || e.Meta["command"] != "untimed" || e.Meta["truncated"] != nil {
		t.Errorf("untimed entry = %+v, want the pass time and the command", e)
	}
	e := events[1]
	cmd, _ := e.Meta["command"].(string)
	if len(cmd) > 4096 || !strings.HasPrefix(long, cmd) || len(cmd) < 4090 || e.Meta["truncated"] != true {
		t.Errorf("long command: %d bytes, truncated %v; want a prefix of at most 4096 bytes, marked", len(cmd), e.Meta["truncated"])
	}
	if !e.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("time = %v, want the entry's", e.Time)
	}
}

func TestIngesterIgnoresSymlinkAndLargeFile(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{MaxFileBytes: 100})
	env.eng.set("link", "#1700000000\necho secret\n")
	env.eng.files["link"].symlink = true
	env.eng.set("big", "#1700000000\n"+strings.Repeat("x", 200)+"\n")
	env.ingest(t)
	wantLines(t, "symlink", env.shell(t, "link"))
	wantLines(t, "large file", env.shell(t, "big"))
	if _, reads := env.eng.counts(); reads != 0 {
		t.Errorf("%d reads, want none", reads)
	}
	// The large file is noted, so it is not looked at again until it changes.
	if cur, err := env.st.HistoryCursor(t.Context(), "big"); err != nil || cur.Size != 213 || cur.Offset != 0 {
		t.Errorf("cursor of the large file = %+v, %v; want size 213, offset 0", cur, err)
	}
	env.eng.set("big", "#1700000000\necho small again\n")
	env.ingest(t)
	wantLines(t, "large file, made small", env.shell(t, "big"), "1700000000 echo small again")
}

func TestIngesterStartAndClose(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{Interval: time.Millisecond})
	env.eng.set("a", "#1700000000\necho one\n")
	env.ingst.Start(t.Context())
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(env.shell(t, "a")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the loop recorded nothing")
		}
		<-tick.C
	}
	env.ingst.Close()
	stats, _ := env.eng.counts()
	env.ingst.Start(t.Context()) // after Close: nothing
	env.ingst.Close()
	if again, _ := env.eng.counts(); again != stats {
		t.Errorf("passes ran after Close: %d stats, was %d", again, stats)
	}
	wantLines(t, "events", env.shell(t, "a"), "1700000000 echo one")
}

// splitEvents returns the space.shell events of space as "time command"
// lines, and its space.shell.skipped events.
func (env *ingestEnv) splitEvents(t *testing.T, space string) (shell []string, skipped []spaces.Event) {
	t.Helper()
	events, err := env.st.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Actor != spaces.ShellActor {
			t.Errorf("%s event with actor %q, want %q", e.Type, e.Actor, spaces.ShellActor)
		}
		switch e.Type {
		case spaces.EventShell:
			shell = append(shell, fmt.Sprintf("%d %v", e.Time.Unix(), e.Meta["command"]))
		case spaces.EventShellSkipped:
			skipped = append(skipped, e)
		default:
			t.Errorf("unexpected %s event", e.Type)
		}
	}
	return shell, skipped
}

// metaInt reads a number of an event's meta; -1 when it has none.
func metaInt(t *testing.T, e spaces.Event, key string) int64 {
	t.Helper()
	switch v := e.Meta[key].(type) {
	case nil:
		return -1
	case float64:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	default:
		t.Fatalf("meta %s = %#v, want a number", key, v)
		return 0
	}
}

// wantSkip checks a space.shell.skipped event.
func wantSkip(t *testing.T, e spaces.Event, bytes, commands int64) {
	t.Helper()
	if e.Type != spaces.EventShellSkipped || e.Actor != spaces.ShellActor || !e.Time.Equal(passTime) {
		t.Errorf("skip event = %+v, want %s by %s at the pass time", e, spaces.EventShellSkipped, spaces.ShellActor)
	}
	if got := metaInt(t, e, "bytes"); got != bytes {
		t.Errorf("skipped bytes = %d, want %d", got, bytes)
	}
	if got := metaInt(t, e, "commands"); got != commands {
		t.Errorf("skipped commands = %d, want %d", got, commands)
	}
}

func (env *ingestEnv) cursor(t *testing.T, space string) spaces.HistoryCursor {
	t.Helper()
	cur, err := env.st.HistoryCursor(t.Context(), space)
	if err != nil {
		t.Fatal(err)
	}
	return cur
}

// timedHistory is n timestamped entries from the first-th on, each command
// padded to at least pad bytes, and the "time command" lines they record.
func timedHistory(first, n, pad int) (string, []string) {
	var b strings.Builder
	var want []string
	for i := first; i < first+n; i++ {
		cmd := fmt.Sprintf("echo %03d", i)
		if len(cmd) < pad {
			cmd += " " + strings.Repeat("x", pad-len(cmd)-1)
		}
		fmt.Fprintf(&b, "#%d\n%s\n", 1700000000+i, cmd)
		want = append(want, fmt.Sprintf("%d %s", 1700000000+i, cmd))
	}
	return b.String(), want
}

// TestIngesterBoundsAFlood: `yes a | head -c 8388608 > ~/.bash_history`
// gives at most the bound of commands and one skipped event, and the next
// pass adds nothing.
func TestIngesterBoundsAFlood(t *testing.T) {
	const size = 8 << 20
	flood := strings.Repeat("a\n", size/2)
	env := newIngestEnv(t, spaces.IngesterConfig{})
	env.eng.set("a", flood)
	began := time.Now()
	env.ingest(t)
	took := time.Since(began)

	shell, skipped := env.splitEvents(t, "a")
	if len(shell) != spaces.DefaultPassCommands {
		t.Errorf("%d space.shell events, want the bound %d", len(shell), spaces.DefaultPassCommands)
	}
	for _, l := range shell {
		if l != fmt.Sprintf("%d a", passTime.Unix()) {
			t.Fatalf("event %q, want a at the pass time", l)
		}
	}
	if len(skipped) != 1 {
		t.Fatalf("%d space.shell.skipped events, want 1", len(skipped))
	}
	recorded := int64(2 * spaces.DefaultPassCommands)
	wantSkip(t, skipped[0], size-recorded, size/2-spaces.DefaultPassCommands)
	if b := env.st.largestBatch(); b > spaces.MaxHistoryBatch {
		t.Errorf("%d events in one transaction, want at most %d", b, spaces.MaxHistoryBatch)
	}
	if cur := env.cursor(t, "a"); cur.Offset != size || cur.Size != size {
		t.Errorf("cursor = %+v, want past the whole file", cur)
	}
	t.Logf("an 8 MiB flood took %v", took)

	_, reads := env.eng.counts()
	env.ingest(t)
	again, skippedAgain := env.splitEvents(t, "a")
	if len(again) != len(shell) || len(skippedAgain) != 1 {
		t.Errorf("the next pass recorded %d commands and %d skips more", len(again)-len(shell), len(skippedAgain)-1)
	}
	if _, r := env.eng.counts(); r != reads {
		t.Errorf("the skipped file was read again")
	}

	// What is written after the flood is recorded as usual.
	env.eng.append("a", "#1700000000\necho after the flood\n")
	env.ingest(t)
	shell, skipped = env.splitEvents(t, "a")
	if len(skipped) != 1 || len(shell) != spaces.DefaultPassCommands+1 || shell[len(shell)-1] != "1700000000 echo after the flood" {
		t.Errorf("after an append: %d commands (last %q) and %d skips; want %d, the append, and 1",
			len(shell), shell[len(shell)-1], len(skipped), spaces.DefaultPassCommands+1)
	}
}

// TestIngesterBoundsAFileReplacedEveryPass: a file replaced or truncated
// and filled again before every pass costs each pass at most the bounds.
func TestIngesterBoundsAFileReplacedEveryPass(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{PassCommands: 50, PassBytes: 64 << 10})
	floods := []string{
		strings.Repeat("yes one\n", 1<<18), // 2 MiB
		strings.Repeat("yes two\n", 1<<18), // replaced
		"",                                 // truncated
		strings.Repeat("yes three\n", 1<<17),
		"#1700000000\nls\n", // replaced by a small file: recorded whole
	}
	wantShell, wantSkips := 0, 0
	for i, data := range floods {
		env.eng.set("a", data)
		env.ingest(t)
		switch {
		case len(data) > 64<<10:
			wantShell, wantSkips = wantShell+50, wantSkips+1
		case data != "":
			wantShell++
		}
		shell, skipped := env.splitEvents(t, "a")
		if len(shell) != wantShell || len(skipped) != wantSkips {
			t.Fatalf("after file %d: %d commands and %d skips, want %d and %d", i, len(shell), len(skipped), wantShell, wantSkips)
		}
		if data != "" && len(data) > 64<<10 {
			wantSkip(t, skipped[len(skipped)-1], int64(len(data)-50*len(data[:strings.IndexByte(data, '\n')+1])),
				int64(strings.Count(data, "\n")-50))
		}
		if b := env.st.largestBatch(); b > 50+1 {
			t.Errorf("%d events in one transaction, want at most 51", b)
		}
	}
}

// TestIngesterByteBound: what lies past the byte bound is skipped, the entry
// it cuts included, and the cursor goes on from the end of the file.
func TestIngesterByteBound(t *testing.T) {
	data, want := timedHistory(0, 10, 0) // 10 entries of 21 bytes
	env := newIngestEnv(t, spaces.IngesterConfig{PassBytes: 100})
	env.eng.set("a", data)
	env.ingest(t)
	shell, skipped := env.splitEvents(t, "a")
	// The first 100 bytes hold 4 entries and the start of the 5th.
	wantLines(t, "first pass", shell, want[:4]...)
	if len(skipped) != 1 {
		t.Fatalf("%d skip events, want 1", len(skipped))
	}
	first4, _ := timedHistory(0, 4, 0)
	wantSkip(t, skipped[0], int64(len(data)-len(first4)), 6)

	more, wantMore := timedHistory(100, 3, 0)
	env.eng.append("a", more)
	env.ingest(t)
	shell, skipped = env.splitEvents(t, "a")
	wantLines(t, "after an append", shell, append(want[:4:4], wantMore...)...)
	if len(skipped) != 1 {
		t.Errorf("%d skip events, want still 1", len(skipped))
	}
	if cur := env.cursor(t, "a"); cur.Offset != int64(len(data)+len(more)) {
		t.Errorf("cursor offset = %d, want %d", cur.Offset, len(data)+len(more))
	}
}

// TestIngesterCommandBoundInBatches: the commands past the bound are
// skipped and counted, and every transaction holds at most BatchEvents rows.
func TestIngesterCommandBoundInBatches(t *testing.T) {
	data, want := timedHistory(0, 25, 200) // over 5 KiB: read past the head, in chunks
	env := newIngestEnv(t, spaces.IngesterConfig{PassCommands: 10, BatchEvents: 3, ChunkBytes: 512})
	env.eng.set("a", data)
	env.ingest(t)
	shell, skipped := env.splitEvents(t, "a")
	wantLines(t, "events", shell, want[:10]...)
	if len(skipped) != 1 {
		t.Fatalf("%d skip events, want 1", len(skipped))
	}
	first10, _ := timedHistory(0, 10, 200)
	wantSkip(t, skipped[0], int64(len(data)-len(first10)), 15)
	// The skip event goes with the last commands.
	if got := fmt.Sprint(env.st.batches); got != "[3 3 3 2]" {
		t.Errorf("events per transaction = %s, want [3 3 3 2]", got)
	}
	env.ingest(t)
	if again, skips := env.splitEvents(t, "a"); len(again) != 10 || len(skips) != 1 {
		t.Errorf("the next pass recorded %d commands and %d skips more", len(again)-10, len(skips)-1)
	}
}

// TestIngesterCommandBoundReachedExactly: reaching the bound with nothing
// past it but a line still being written is no skip.
func TestIngesterCommandBoundReachedExactly(t *testing.T) {
	env := newIngestEnv(t, spaces.IngesterConfig{PassCommands: 3})
	env.eng.set("a", "#1700000000\necho one\n#1700000001\necho two\n#1700000002\necho three\n#1700000003\necho fo")
	env.ingest(t)
	shell, skipped := env.splitEvents(t, "a")
	wantLines(t, "first pass", shell, "1700000000 echo one", "1700000001 echo two", "1700000002 echo three")
	if len(skipped) != 0 {
		t.Errorf("%d skip events, want none", len(skipped))
	}
	env.eng.append("a", "ur\n")
	env.ingest(t)
	shell, skipped = env.splitEvents(t, "a")
	wantLines(t, "after the line ends", shell,
		"1700000000 echo one", "1700000001 echo two", "1700000002 echo three", "1700000003 echo four")
	if len(skipped) != 0 {
		t.Errorf("%d skip events, want none", len(skipped))
	}
}

// TestIngesterBatchesResumeAfterFailure: a pass that fails part way keeps
// the batches saved before, and the next one (after a restart) goes on
// from there without losing or repeating a command.
func TestIngesterBatchesResumeAfterFailure(t *testing.T) {
	data, want := timedHistory(0, 30, 150) // over 4 KiB
	cfg := spaces.IngesterConfig{BatchEvents: 4, ChunkBytes: 300}
	env := newIngestEnv(t, cfg)
	env.eng.set("a", data)
	env.st.okSaves, env.st.failSaves = 2, 1
	if err := env.ingst.IngestOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("IngestOnce = %v, want the save failure", err)
	}
	wantLines(t, "after the failure", env.shell(t, "a"), want[:8]...)
	if cur := env.cursor(t, "a"); cur.Size != -1 {
		t.Errorf("cursor = %+v part way, want size -1", cur)
	}

	env.st.Close()
	env.open(t, cfg)
	env.ingest(t)
	wantLines(t, "after a restart", env.shell(t, "a"), want...)
	if b := env.st.largestBatch(); b > 4 {
		t.Errorf("%d events in one transaction, want at most 4", b)
	}
	if cur := env.cursor(t, "a"); cur.Offset != int64(len(data)) || cur.Size != int64(len(data)) {
		t.Errorf("cursor = %+v, want offset and size %d", cur, len(data))
	}
}

// TestIngesterEntryLargerThanAChunkPastTheHead: entries longer than a chunk
// past the file's head end the pass, and what follows them is recorded once.
func TestIngesterEntryLargerThanAChunkPastTheHead(t *testing.T) {
	data, want := timedHistory(0, 30, 150) // over 4 KiB
	env := newIngestEnv(t, spaces.IngesterConfig{ChunkBytes: 100})
	env.eng.set("a", data+"#1700000999\necho "+strings.Repeat("x", 300)+"\n#1700001000\necho after\n")
	env.ingest(t)
	got := env.shell(t, "a")
	if len(got) < 2 || got[len(got)-1] != "1700001000 echo after" || got[0] != want[0] {
		t.Errorf("events = %q, want the first entry first and echo after last", got)
	}
	env.ingest(t)
	if again := env.shell(t, "a"); len(again) != len(got) {
		t.Errorf("a second pass recorded %d more events", len(again)-len(got))
	}
}
