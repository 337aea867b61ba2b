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
		out = append(out, spaces.Space{Name: name, Status: st})
	}
	return out, nil
}

func (f *historyEngine) StatPath(_ context.Context, name, p string) (spaces.FileInfo, error) {
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

func (f *historyEngine) ReadFile(_ context.Context, name, p string) (spaces.FileInfo, io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	file, ok := f.files[name]
	if !ok || p != spaces.HistoryFile {
		return spaces.FileInfo{}, nil, spaces.Errorf(spaces.ErrNotFound, "No such file or folder: %s", p)
	}
	if file.symlink {
		return file.info(p), nil, nil
	}
	return file.info(p), io.NopCloser(bytes.NewReader(bytes.Clone(file.data))), nil
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

var passTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// flakyStore fails the next failSaves calls of SaveHistory.
type flakyStore struct {
	*store.Store
	mu        sync.Mutex
	failSaves int
}

func (s *flakyStore) SaveHistory(ctx context.Context, space string, cur spaces.HistoryCursor, events []spaces.Event) error {
	s.mu.Lock()
	fail := s.failSaves > 0
	if fail {
		s.failSaves--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.Store.SaveHistory(ctx, space, cur, events)
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
