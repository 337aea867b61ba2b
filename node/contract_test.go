package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/nodetest"
)

// pluginCall sends a request exactly as the Clawdbot plugin does: a Bearer
// key and `content-type: application/json` on every request, GET and DELETE
// and body-less POSTs included.
func pluginCall(t *testing.T, n *nodetest.Node, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+nodetest.Key)
	req.Header.Set("content-type", "application/json")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// wantKeys fails unless m has every key, with values of the given JSON kinds.
func wantKeys(t *testing.T, what string, m map[string]any, kinds map[string]string) {
	t.Helper()
	for k, kind := range kinds {
		v, ok := m[k]
		if !ok {
			t.Errorf("%s: missing %q in %v", what, k, m)
			continue
		}
		if got := jsonKind(v); got != kind {
			t.Errorf("%s: %q is %s (%v), want %s", what, k, got, v, kind)
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return "?"
}

func decode(t *testing.T, what string, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: body %q is not a JSON object: %v", what, data, err)
	}
	return m
}

var spaceKinds = map[string]string{
	"name": "string", "id": "string", "status": "string", "created": "string", "started": "string",
	"image": "string", "memory": "number", "cpus": "number", "lastActivity": "string", "volume": "object",
}

// TestPluginContract replays every Clawdbot plugin action of the wire
// contract (files and observability belong to the data plane) and checks
// the response shapes the plugin reads.
func TestPluginContract(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "plugin")

	steps := []struct {
		action, method, path, body string
		want                       int
		check                      func(t *testing.T, m map[string]any)
	}{
		{"health", "GET", "/api/health", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "health", m, map[string]string{"status": "string", "version": "string"})
		}},
		{"system", "GET", "/api/system", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "system", m, map[string]string{"hostname": "string", "platform": "string", "arch": "string",
				"cpus": "number", "loadAverage": "array", "memory": "object", "uptime": "number", "docker": "object", "capabilities": "object"})
			mem := m["memory"].(map[string]any)
			wantKeys(t, "system.memory", mem, map[string]string{"total": "string", "free": "string", "used": "string", "percentage": "string"})
			if !regexp.MustCompile(`^\d+(\.\d)? (B|KB|MB|GB|TB)$`).MatchString(mem["total"].(string)) {
				t.Errorf("memory.total %q is not like \"23.5 GB\"", mem["total"])
			}
			if !regexp.MustCompile(`^\d+\.\d%$`).MatchString(mem["percentage"].(string)) {
				t.Errorf("memory.percentage %q is not like \"4.6%%\"", mem["percentage"])
			}
			if la := m["loadAverage"].([]any); len(la) != 3 {
				t.Errorf("loadAverage has %d numbers", len(la))
			}
			wantKeys(t, "system.docker", m["docker"].(map[string]any), map[string]string{"version": "string",
				"containers": "number", "containersRunning": "number", "containersPaused": "number", "images": "number"})
			wantKeys(t, "system.capabilities", m["capabilities"].(map[string]any), map[string]string{"gpu": "bool", "arch": "string", "platform": "string"})
		}},
		{"capabilities", "GET", "/api/system/capabilities", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "capabilities", m, map[string]string{"gpu": "bool", "arch": "string", "platform": "string", "cpus": "number", "memory": "number"})
		}},
		{"nodes", "GET", "/api/nodes", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "nodes", m, map[string]string{"nodes": "array", "lastUpdatedAt": "number"})
			nodes := m["nodes"].([]any)
			if len(nodes) != 1 {
				t.Fatalf("nodes = %v", nodes)
			}
			wantKeys(t, "node", nodes[0].(map[string]any), map[string]string{"name": "string", "url": "string", "status": "string"})
			if s := nodes[0].(map[string]any)["status"]; s != "online" {
				t.Errorf("status = %v", s)
			}
		}},
		{"templates_list", "GET", "/api/templates", "", 200, func(t *testing.T, m map[string]any) {
			var names []string
			for _, x := range m["templates"].([]any) {
				tm := x.(map[string]any)
				wantKeys(t, "template", tm, map[string]string{"name": "string", "description": "string"})
				names = append(names, tm["name"].(string))
			}
			if got := strings.Join(names, ","); got != "default,gpu,lan,offline" {
				t.Errorf("templates = %s, want the four built-ins sorted", got)
			}
		}},
		{"templates_get", "GET", "/api/templates/offline", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "template", m, map[string]string{"name": "string", "yaml": "string"})
			if !strings.Contains(m["yaml"].(string), "mode: none") {
				t.Errorf("offline yaml = %q", m["yaml"])
			}
		}},
		{"templates_put", "PUT", "/api/templates", `{"yaml":"name: contract-tpl\ndescription: from the plugin\nresources:\n  memory: 512m\n  cpus: 1\n"}`, 200, func(t *testing.T, m map[string]any) {
			tpl := m["template"].(map[string]any)
			if tpl["name"] != "contract-tpl" || tpl["resources"].(map[string]any)["memory"] != "512m" {
				t.Errorf("template = %v", tpl)
			}
		}},
		{"templates_delete", "DELETE", "/api/templates/contract-tpl", "", 200, func(t *testing.T, m map[string]any) {
			if m["message"] != "OK" {
				t.Errorf("message = %v", m["message"])
			}
		}},
		{"templates_get missing", "GET", "/api/templates/contract-tpl", "", 404, func(t *testing.T, m map[string]any) {
			if m["error"] != "Template not found" {
				t.Errorf("error = %v", m["error"])
			}
		}},
		{"create_space", "POST", "/api/spaces", `{"name":"` + name + `","template":"default"}`, 201, func(t *testing.T, m map[string]any) {
			sp := m["space"].(map[string]any)
			wantKeys(t, "space", sp, spaceKinds)
			if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(sp["id"].(string)) {
				t.Errorf("id = %v", sp["id"])
			}
			if sp["status"] != "running" {
				t.Errorf("status = %v", sp["status"])
			}
		}},
		{"create_space again", "POST", "/api/spaces", `{"name":"` + name + `"}`, 409, func(t *testing.T, m map[string]any) {
			if m["error"] != "Space already exists" {
				t.Errorf("error = %v", m["error"])
			}
		}},
		{"list_spaces", "GET", "/api/spaces", "", 200, func(t *testing.T, m map[string]any) {
			found := false
			for _, x := range m["spaces"].([]any) {
				sp := x.(map[string]any)
				wantKeys(t, "space", sp, spaceKinds)
				found = found || sp["name"] == name
			}
			if !found {
				t.Errorf("%s not listed", name)
			}
		}},
		{"exec", "POST", "/api/spaces/" + name + "/exec", `{"command":"printf '  out  \\n'; printf err >&2; exit 7"}`, 200, func(t *testing.T, m map[string]any) {
			if m["stdout"] != "  out  \n" || m["stderr"] != "err" || m["exitCode"] != float64(7) {
				t.Errorf("exec = %v", m)
			}
		}},
		{"stop_space", "POST", "/api/spaces/" + name + "/stop", "", 200, func(t *testing.T, m map[string]any) {
			if m["message"] != "Space paused" {
				t.Errorf("message = %v", m["message"])
			}
		}},
		{"stop_space status", "GET", "/api/spaces/" + name, "", 200, func(t *testing.T, m map[string]any) {
			if st := m["space"].(map[string]any)["status"]; st != "paused" {
				t.Errorf("status = %v", st)
			}
		}},
		{"start_space", "POST", "/api/spaces/" + name + "/start", "", 200, func(t *testing.T, m map[string]any) {
			if m["message"] != "Space started" {
				t.Errorf("message = %v", m["message"])
			}
		}},
		{"space_stats", "GET", "/api/spaces/" + name + "/stats", "", 200, func(t *testing.T, m map[string]any) {
			wantKeys(t, "stats", m["stats"].(map[string]any), map[string]string{"cpuPercent": "number", "memoryUsageBytes": "number",
				"memoryLimitBytes": "number", "pids": "number", "networkRxBytes": "number", "networkTxBytes": "number",
				"blockReadBytes": "number", "blockWriteBytes": "number"})
		}},
		{"audit", "GET", "/api/audit?limit=3&space=" + url.QueryEscape(name), "", 200, func(t *testing.T, m map[string]any) {
			events := m["events"].([]any)
			if len(events) != 3 {
				t.Fatalf("events = %v", events)
			}
			var types []string
			for _, e := range events {
				em := e.(map[string]any)
				wantKeys(t, "event", em, map[string]string{"ts": "string", "type": "string", "space": "string"})
				types = append(types, em["type"].(string))
			}
			if got := strings.Join(types, ","); got != "space.exec,space.pause,space.start" {
				t.Errorf("newest three events oldest first = %s", got)
			}
		}},
		{"destroy_space", "DELETE", "/api/spaces/" + name + "?removeVolume=true", "", 200, func(t *testing.T, m map[string]any) {
			if m["message"] != "Space destroyed" {
				t.Errorf("message = %v", m["message"])
			}
		}},
		{"destroy_space again", "DELETE", "/api/spaces/" + name + "?removeVolume=true", "", 404, func(t *testing.T, m map[string]any) {
			if m["error"] != "Space not found" {
				t.Errorf("error = %v", m["error"])
			}
		}},
	}
	for _, s := range steps {
		status, body := pluginCall(t, n, s.method, s.path, s.body)
		if status != s.want {
			t.Fatalf("%s: %s %s = %d %s, want %d", s.action, s.method, s.path, status, body, s.want)
		}
		s.check(t, decode(t, s.action, body))
	}
}

// TestBashCLIContract checks the byte-level expectations of the old bash
// CLI, which greps responses rather than parsing them.
func TestBashCLIContract(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "cli")

	if _, body := pluginCall(t, n, "GET", "/api/health", ""); !strings.Contains(string(body), `"ok"`) {
		t.Errorf("health body %s lacks \"ok\"", body)
	}
	if _, body := pluginCall(t, n, "GET", "/api/system/capabilities", ""); !strings.Contains(string(body), `"gpu":false`) {
		t.Errorf("capabilities body %s lacks \"gpu\":false with no space", body)
	}
	if _, body := pluginCall(t, n, "GET", "/api/system", ""); !strings.Contains(string(body), `"hostname":"`) {
		t.Errorf("system body %s lacks hostname", body)
	}
	// The CLI sends memory and cpus as it read them from flags.
	status, body := pluginCall(t, n, "POST", "/api/spaces", `{"name":"`+name+`","memory":"512m","cpus":"1","gpu":false}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %s", status, body)
	}
	status, body = pluginCall(t, n, "GET", "/api/spaces/"+name, "")
	if status != 200 || !strings.Contains(string(body), `"name"`) {
		t.Errorf("lookup = %d %s", status, body)
	}
	if status, body = pluginCall(t, n, "GET", "/api/spaces/nope-"+name, ""); status != 404 || strings.Contains(string(body), `"name"`) {
		t.Errorf("lookup of a missing space = %d %s", status, body)
	}
	// exec NAME COMMAND... with the exit code passed through.
	status, body = pluginCall(t, n, "POST", "/api/spaces/"+name+"/exec", `{"command":"exit 42"}`)
	if status != 200 || !strings.Contains(string(body), `"exitCode":42`) {
		t.Errorf("exec = %d %s", status, body)
	}
}
