package spaces_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/store"
)

// portEngine knows spaces "a" and "b"; DialPort answers with one end of a
// pipe whose other end echoes, and ErrNotRunning while a space is paused.
type portEngine struct {
	spaces.Engine
	mu      sync.Mutex
	paused  map[string]bool
	resumes int
	dials   int
}

func (e *portEngine) Get(_ context.Context, name string) (spaces.Space, error) {
	if name != "a" && name != "b" {
		return spaces.Space{}, spaces.SpaceNotFound()
	}
	return spaces.Space{Name: name, Status: spaces.StatusRunning}, nil
}

func (e *portEngine) Resume(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.paused[name] = false
	e.resumes++
	return nil
}

func (e *portEngine) Remove(context.Context, string, bool) error { return nil }

func (e *portEngine) DialPort(_ context.Context, name string, port uint16) (net.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.paused[name] {
		return nil, spaces.ErrNotRunning
	}
	e.dials++
	mine, theirs := net.Pipe()
	go func() {
		_, _ = io.Copy(theirs, theirs)
		theirs.Close()
	}()
	return mine, nil
}

func newPortService(t *testing.T, path string, eng *portEngine) *spaces.Service {
	t.Helper()
	st, err := store.New(t.Context(), store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := spaces.New(t.Context(), spaces.Config{Engine: eng, Store: st, ReservedPorts: []uint16{7777, 22}, ForwardPorts: [2]uint16{40000, 40001}, MaxPortConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestForwardAssignment(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "db")
	eng := &portEngine{paused: map[string]bool{}}
	svc := newPortService(t, path, eng)
	c := spaces.CallerAPIKey()

	changed := svc.ForwardsChanged()
	f, created, err := svc.OpenForward(ctx, c, "a", spaces.ForwardRequest{Port: 3000})
	if err != nil || !created || f.NodePort != 3000 {
		t.Fatalf("first forward of 3000: %+v created=%v err=%v; want node port 3000", f, created, err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("ForwardsChanged was not closed by a new forward")
	}
	// The same request again is the same forward.
	if g, created, err := svc.OpenForward(ctx, c, "a", spaces.ForwardRequest{Port: 3000}); err != nil || created || g.NodePort != 3000 {
		t.Fatalf("repeated forward: %+v created=%v err=%v", g, created, err)
	}
	// Another space's 3000 gets a port of the range; a port below 1024 too.
	if g, _, err := svc.OpenForward(ctx, c, "b", spaces.ForwardRequest{Port: 3000}); err != nil || g.NodePort != 40000 {
		t.Fatalf("b:3000 = %+v, %v; want node port 40000", g, err)
	}
	if g, _, err := svc.OpenForward(ctx, c, "b", spaces.ForwardRequest{Port: 80}); err != nil || g.NodePort != 40001 {
		t.Fatalf("b:80 = %+v, %v; want node port 40001", g, err)
	}
	// The range is used up.
	if _, _, err := svc.OpenForward(ctx, c, "b", spaces.ForwardRequest{Port: 81}); !errors.Is(err, spaces.ErrConflict) {
		t.Fatalf("forward past the range: %v, want ErrConflict", err)
	}
	for _, tc := range []struct {
		req  spaces.ForwardRequest
		want error
	}{
		{spaces.ForwardRequest{Port: 0}, spaces.ErrInvalid},
		{spaces.ForwardRequest{Port: 5000, NodePort: 7777}, spaces.ErrConflict},
		{spaces.ForwardRequest{Port: 5000, NodePort: 3000}, spaces.ErrConflict},
		{spaces.ForwardRequest{Port: 3000, NodePort: 5000}, spaces.ErrConflict},
	} {
		if _, _, err := svc.OpenForward(ctx, c, "a", tc.req); !errors.Is(err, tc.want) {
			t.Errorf("OpenForward(%+v) = %v, want %v", tc.req, err, tc.want)
		}
	}
	if _, _, err := svc.OpenForward(ctx, c, "nope", spaces.ForwardRequest{Port: 3000}); !errors.Is(err, spaces.ErrNotFound) {
		t.Errorf("forward of a missing space: %v, want ErrNotFound", err)
	}

	// A new Service on the same database (a restart) serves the same ports.
	svc2 := newPortService(t, path, eng)
	got, err := svc2.ServedForwards(ctx)
	if err != nil || len(got) != 3 || got[0].NodePort != 3000 || got[0].Space != "a" || got[1].NodePort != 40000 || got[2].NodePort != 40001 {
		t.Fatalf("forwards after a restart: %+v, %v", got, err)
	}

	if err := svc2.CloseForward(ctx, c, "b", 80); err != nil {
		t.Fatal(err)
	}
	if err := svc2.CloseForward(ctx, c, "b", 80); !errors.Is(err, spaces.ErrNotFound) {
		t.Fatalf("closing a closed forward: %v, want ErrNotFound", err)
	}
	// Destroying a space drops its forwards.
	changed = svc2.ForwardsChanged()
	if err := svc2.Destroy(ctx, c, "b", false); err != nil {
		t.Fatal(err)
	}
	<-changed
	got, _ = svc2.ServedForwards(ctx)
	if len(got) != 1 || got[0].Space != "a" {
		t.Fatalf("forwards after destroying b: %+v", got)
	}
}

func TestConnectPortResumesCountsAndAudits(t *testing.T) {
	ctx := t.Context()
	eng := &portEngine{paused: map[string]bool{"a": true}}
	svc := newPortService(t, filepath.Join(t.TempDir(), "db"), eng)
	c := spaces.Caller{Kind: spaces.KindPerson, Actor: "alice@example.com", Door: spaces.DoorPorts, Access: spaces.FullAccess()}

	conn, err := svc.ConnectPort(ctx, c, "a", 3000, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if eng.resumes != 1 {
		t.Fatalf("resumes = %d; a connection to a paused space must wake it", eng.resumes)
	}
	if !svc.Busy("a") {
		t.Fatal("the space is not busy while a connection is open")
	}
	go func() { _, _ = conn.Write([]byte("hello")) }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	// At most MaxPortConns (2) at once.
	second, err := svc.ConnectPort(ctx, c, "a", 3000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ConnectPort(ctx, c, "a", 3000, 0); !errors.Is(err, spaces.ErrConflict) {
		t.Fatalf("third connection: %v, want ErrConflict", err)
	}
	second.Close()
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if svc.Busy("a") {
		t.Fatal("the space is still busy after its connections closed")
	}
	evs, err := svc.Events(ctx, spaces.CallerAPIKey(), spaces.AuditQuery{Space: "a", Type: spaces.EventPortConnection, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("port.connection rows = %d, want 2 (one per connection, one each however often Close is called)", len(evs))
	}
	var withBytes int
	for _, e := range evs {
		if e.Actor != "alice@example.com" || e.Meta["door"] != "ports" {
			t.Errorf("row = %+v, want alice through the ports door", e)
		}
		if e.Meta["bytesIn"] == float64(5) && e.Meta["bytesOut"] == float64(5) && e.Meta["port"] == float64(3000) && e.Meta["nodePort"] == float64(3000) {
			withBytes++
		}
	}
	if withBytes != 1 {
		t.Errorf("no row counts 5 bytes each way on port 3000: %+v", evs)
	}
}
