package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestTimedOutExecsAreDead: a command whose timeout passes before the
// engine has even started it answers "timed out" only once it is dead.
// Many at once, so that some are caught in each moment of their start.
func TestTimedOutExecsAreDead(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{Namespace: "tkill"})
	name := newSpace(t, n, "tkill")
	const execs = 60
	var wg sync.WaitGroup
	errs := make(chan string, execs)
	for i := range execs {
		wg.Go(func() {
			body := fmt.Sprintf(`{"command":["sleep","62"],"timeoutMs":%d}`, 1+i%50)
			res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/exec", body)
			var doc struct {
				ExitCode int  `json:"exitCode"`
				TimedOut bool `json:"timedOut"`
			}
			if res.Status == http.StatusOK {
				res.JSON(t, &doc)
			}
			if res.Status != http.StatusOK || doc.ExitCode != 124 || !doc.TimedOut {
				errs <- fmt.Sprintf("exec %d: status %d, body %s", i, res.Status, res.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Every answer said "timed out": none may still run. A short settle is
	// allowed for the engine to reap what was killed.
	var left []string
	deadline := time.Now().Add(2 * time.Second)
	for {
		top, err := n.Raw().ContainerTop(t.Context(), n.Engine.ContainerName(name), client.ContainerTopOptions{Arguments: []string{"-eo", "pid,args"}})
		if err != nil {
			t.Fatalf("listing the space's processes: %v", err)
		}
		left = left[:0]
		for _, p := range top.Processes {
			if line := strings.Join(p, " "); strings.Contains(line, "sleep 62") {
				left = append(left, line)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("%d commands answered as timed out still run: %v", len(left), left)
	}
}
