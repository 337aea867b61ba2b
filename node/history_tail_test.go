package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestHistoryTailOfSparseFile: a sparse 20 GB .bash_history (issue 11,
// item 5) does not hang observability or history ingest: only the tail is
// read, and the last commands come back. In both file modes.
func TestHistoryTailOfSparseFile(t *testing.T) {
	for _, mode := range fileModes {
		t.Run(mode.name, func(t *testing.T) {
			n := nodetest.Start(t, nodetest.Options{FilesInSpace: mode.inSpace})
			name := newSpace(t, n, "sparse")
			if out, code := sh(t, n, name, "truncate -s 20G /workspace/.bash_history && printf '\\n#1700000000\\necho tail-marker\\n' >> /workspace/.bash_history"); code != 0 {
				t.Fatalf("making a sparse history: %s", out)
			}
			r := n.Do(t, "GET", "/api/spaces/"+name+"/observability", nil)
			if r.Status != http.StatusOK {
				t.Fatalf("observability = %d %s", r.Status, r.Body)
			}
			var doc struct {
				Observability struct {
					BashHistoryTail *string `json:"bashHistoryTail"`
				} `json:"observability"`
			}
			r.JSON(t, &doc)
			if tail := doc.Observability.BashHistoryTail; tail == nil || !strings.HasSuffix(*tail, "echo tail-marker") {
				t.Fatalf("bashHistoryTail = %v, want it to end with the last command", tail)
			}
			// The ingester's pass over the same file ends (it skips a file
			// this large with a warning, reading none of it).
			ingestHistory(t, n, name)
		})
	}
}
