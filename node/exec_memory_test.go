package node_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// scanWriter counts what it is given and notes which of want it saw,
// without keeping the answer (the test measures allocations).
type scanWriter struct {
	n    int64
	want []string
	seen map[string]bool
	tail []byte
	buf  []byte
}

func (w *scanWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	window := append(append(w.buf[:0], w.tail...), p...)
	w.buf = window
	for _, s := range w.want {
		if bytes.Contains(window, []byte(s)) {
			w.seen[s] = true
		}
	}
	w.tail = append(w.tail[:0], window[max(0, len(window)-64):]...)
	return len(p), nil
}

// TestExecOutputMemoryBounded: 20 MB of NUL or non-UTF-8 bytes under the
// default 10 MiB cap give an answer of about the cap, and the node's heap
// grows by a small multiple of the cap, not by the encoded output (before:
// a 77 MB answer and ~380 MiB of node memory). Not parallel: it measures
// the process's allocations, the node's included.
func TestExecOutputMemoryBounded(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "exec-mem")
	const limit = 10 << 20
	tests := []struct {
		name    string
		command string
	}{
		{"NUL bytes", "head -c 20000000 /dev/zero"},
		{"bytes that are not UTF-8", "head -c 20000000 /dev/zero | tr '\\0' '\\377'"},
		{"text with newlines", "head -c 20000000 /dev/zero | tr '\\0' '\\n'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]string{"command": tt.command})
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPost, n.URL+"/api/spaces/"+name+"/exec", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+nodetest.Key)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			resp, err := n.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer := scanWriter{want: []string{`,"exitCode":0,`, `,"truncated":true`}, seen: map[string]bool{}}
			_, err = io.Copy(&answer, resp.Body)
			resp.Body.Close()
			runtime.ReadMemStats(&after)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, err %v, answer ends %q", resp.StatusCode, err, answer.tail)
			}
			if answer.n > limit+1024 {
				t.Errorf("answer of %d bytes for a cap of %d", answer.n, limit)
			}
			for _, s := range answer.want {
				if !answer.seen[s] {
					t.Errorf("the answer has no %s (it ends %q)", s, answer.tail)
				}
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("answer %d bytes; allocated %d MiB during the exec, heap in use %+d MiB", answer.n, alloc>>20,
				(int64(after.HeapInuse)-int64(before.HeapInuse))>>20)
			if alloc > 8*limit {
				t.Errorf("the exec allocated %d MiB for a cap of %d MiB", alloc>>20, limit>>20)
			}
		})
	}
}

// TestExecOutputCeiling: while the node's ceiling on buffered exec output
// is spent by one exec, another is refused with 503 before it starts, and
// runs once the first has answered.
func TestExecOutputCeiling(t *testing.T) {
	t.Parallel()
	// One chunk: the first exec's reservation spends it.
	n := nodetest.Start(t, nodetest.Options{MaxExecOutput: 64 << 10})
	name := newSpace(t, n, "exec-ceiling")
	var (
		wg    sync.WaitGroup
		first nodetest.Response
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{
			"command": "touch /workspace/started; while [ ! -e /workspace/go ]; do sleep 0.05; done; echo done"})
	}()
	eventually(t, "the first exec to start", time.Minute, func() bool {
		return n.Do(t, http.MethodGet, "/api/spaces/"+name+"/file?path=/started", nil).Status == http.StatusOK
	})
	res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", map[string]any{"command": "echo second"})
	wantErrorContains(t, res, http.StatusServiceUnavailable, "exec output", "stream")
	if res := n.Do(t, http.MethodPut, "/api/spaces/"+name+"/file?path=/go", map[string]any{"contentBase64": ""}); res.Status != http.StatusOK {
		t.Fatalf("writing /go: %d %s", res.Status, res.Body)
	}
	wg.Wait()
	if first.Status != http.StatusOK || !strings.Contains(string(first.Body), `"stdout":"done\n"`) {
		t.Fatalf("first exec: %d %s", first.Status, first.Body)
	}
	if out := execIn(t, n, name, "echo second"); out.Stdout != "second\n" {
		t.Fatalf("second exec after the first answered: %+v", out)
	}
}
