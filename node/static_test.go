package node_test

import (
	"net/http"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestStaticServesFilesOnly: /static/ serves the dashboard's files without
// a key, and never lists a folder (issue 11 item 10).
func TestStaticServesFilesOnly(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "file", path: "/static/app.css", want: http.StatusOK},
		{name: "vendored file", path: "/static/vendor/xterm/xterm.js", want: http.StatusOK},
		{name: "root", path: "/static/", want: http.StatusNotFound},
		{name: "folder with slash", path: "/static/vendor/", want: http.StatusNotFound},
		{name: "folder without slash", path: "/static/vendor", want: http.StatusNotFound},
		{name: "missing", path: "/static/nope.js", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.DoKey(t, "", http.MethodGet, tt.path, nil)
			if res.Status != tt.want {
				t.Fatalf("GET %s without key = %d, want %d (body %.200s)", tt.path, res.Status, tt.want, res.Body)
			}
			if tt.want != http.StatusOK && len(res.Body) > 0 && string(res.Body[:min(len(res.Body), 5)]) == "<pre>" {
				t.Errorf("GET %s lists a folder: %.200s", tt.path, res.Body)
			}
		})
	}
}
