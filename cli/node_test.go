package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("audit")
	e.ok(nil, "exec", name, "echo audited")

	type event struct {
		ID    int64          `json:"id"`
		Type  string         `json:"type"`
		Space string         `json:"space"`
		Actor string         `json:"actor"`
		Meta  map[string]any `json:"meta"`
	}
	var evs []event
	e.jsonOf(&evs, "audit", "--space", name, "--json")
	if len(evs) != 2 || evs[0].Type != "space.create" || evs[1].Type != "space.exec" || evs[1].Meta["command"] != "sh -c echo audited" || evs[1].Space != name {
		t.Fatalf("audit --json = %+v", evs)
	}
	e.jsonOf(&evs, "audit", "--space", name, "--limit", "1", "--json")
	if len(evs) != 1 || evs[0].Type != "space.exec" {
		t.Errorf("--limit 1 = %+v", evs)
	}
	r := e.ok(nil, "audit", "--space", name)
	if !strings.HasPrefix(r.Stdout, "TIME") || !strings.Contains(r.Stdout, `command="sh -c echo audited"`) || !strings.Contains(r.Stdout, "api-key") {
		t.Errorf("audit table:\n%s", r.Stdout)
	}

	t.Run("follow", func(t *testing.T) {
		cmd := e.command(t.Context(), "audit", "--follow", "--json", "--interval", "100ms", "--space", name)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		lines := newLineWaiter(out)
		isType := func(typ string) func(string) bool {
			return func(l string) bool {
				var ev event
				return json.Unmarshal([]byte(l), &ev) == nil && ev.Type == typ
			}
		}
		lines.wait(t, time.Minute, isType("space.exec"))
		e.ok(nil, "stop", name)
		lines.wait(t, time.Minute, isType("space.pause"))
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		<-lines.done
		if err := cmd.Wait(); err != nil {
			t.Errorf("audit --follow ended with %v", err)
		}
	})
}

func TestNodesServersSystem(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)

	var nodes []struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		Status string `json:"status"`
		Self   bool   `json:"self"`
	}
	e.jsonOf(&nodes, "nodes", "--json")
	if len(nodes) != 1 || !nodes[0].Self || nodes[0].URL != e.node.URL || nodes[0].Status != "online" {
		t.Errorf("nodes --json = %+v", nodes)
	}
	if r := e.ok(nil, "nodes"); !strings.Contains(r.Stdout, "(this node)") || !strings.Contains(r.Stdout, e.node.URL) {
		t.Errorf("nodes:\n%s", r.Stdout)
	}

	var servers []struct {
		Name         string        `json:"name"`
		URL          string        `json:"url"`
		Status       string        `json:"status"`
		Capabilities *Capabilities `json:"capabilities"`
	}
	e.jsonOf(&servers, "servers", "--json")
	if len(servers) != 1 || servers[0].URL != e.node.URL || servers[0].Status != "online" || servers[0].Capabilities == nil || servers[0].Capabilities.CPUs < 1 {
		t.Fatalf("servers --json = %+v", servers)
	}
	if _, err := os.Stat(filepath.Join(e.home, ".cache", "clawdspace", "nodes.json")); err != nil {
		t.Errorf("discovery was not cached: %v", err)
	}
	if r := e.ok(nil, "servers", "--refresh"); !strings.Contains(r.Stdout, "online") || !strings.Contains(r.Stdout, servers[0].Name) {
		t.Errorf("servers --refresh:\n%s", r.Stdout)
	}

	var sys map[string]any
	e.jsonOf(&sys, "system", "--json")
	if sys["hostname"] == "" || sys["cpus"] == nil || sys["nodeUrl"] != e.node.URL {
		t.Errorf("system --json = %v", sys)
	}
	if r := e.ok(nil, "system", "--server", e.node.URL); !strings.Contains(r.Stdout, "Hostname:") || !strings.Contains(r.Stdout, "Memory:") {
		t.Errorf("system:\n%s", r.Stdout)
	}
	// A node is named by what it reports, and the name works as --server.
	if r := e.ok(nil, "system", "-s", servers[0].Name); !strings.Contains(r.Stdout, e.node.URL) {
		t.Errorf("system -s %s:\n%s", servers[0].Name, r.Stdout)
	}
}

// TestSeveralNodes runs two nodes (one with a GPU) and a dead host: spaces
// are found on the node that has them, listings go on without the dead
// host, and create --gpu goes to the GPU node. It is not parallel: the GPU
// node finds its GPU through a fake nvidia-smi on PATH.
func TestSeveralNodes(t *testing.T) {
	e := newCLIEnv(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "nvidia-smi"), []byte("#!/bin/sh\necho 'Test GPU, 1024 MiB'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	gpu := nodetest.Start(t, nodetest.Options{HasGPU: true})
	e.env["CLAWDSPACE_HOSTS"] = "127.0.0.1:1 " + e.node.URL + "," + gpu.URL
	name := e.space("multi")

	if r := e.ok(nil, "exec", name, "hostname"); r.Stdout != name+"\n" {
		t.Errorf("exec across nodes: %s", r)
	}
	var servers []struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	e.jsonOf(&servers, "servers", "--json")
	if len(servers) != 3 || servers[0].Status != "offline" || !strings.Contains(servers[0].Error, "connection refused") ||
		servers[1].Status != "online" || servers[2].Status != "online" || servers[1].Name == servers[2].Name {
		t.Fatalf("servers --json = %+v", servers)
	}
	r := e.ok(nil, "servers")
	if !strings.Contains(r.Stdout, "Test GPU 1024 MiB") || !strings.Contains(r.Stdout, "offline") {
		t.Errorf("servers:\n%s", r)
	}
	r = e.ok(nil, "list")
	if !strings.Contains(r.Stdout, name) || !strings.Contains(r.Stderr, "warning: cannot reach http://127.0.0.1:1") {
		t.Errorf("list:\n%s", r)
	}
	// Both test nodes share one engine, so both report the space.
	var all []listed
	e.jsonOf(&all, "list", "--json")
	urls := map[string]bool{}
	for _, s := range all {
		if s.Name == name {
			urls[s.NodeURL] = true
		}
	}
	if !urls[e.node.URL] || !urls[gpu.URL] {
		t.Errorf("list --json nodes of %s: %v", name, urls)
	}

	// The engine has no GPU, so the create fails on the GPU node; its
	// audit log shows that it was the one asked.
	g := nodetest.Name(t, e.node.Engine, "gpu")
	r = e.run(nil, "create", g, "--gpu", "-m", "256m")
	t.Logf("create --gpu on an engine without GPUs: %s", r)
	rowsOn := func(n *nodetest.Node) int {
		var out struct {
			Events []map[string]any `json:"events"`
		}
		n.Do(t, "GET", "/api/audit?space="+g, nil).JSON(t, &out)
		return len(out.Events)
	}
	if rowsOn(gpu) != 1 || rowsOn(e.node) != 0 {
		t.Errorf("create --gpu: audit rows on the GPU node %d, on the other %d", rowsOn(gpu), rowsOn(e.node))
	}
	oneLineError(t, e.run(nil, "stats", "t-missing"), 1, `space "t-missing" not found on any node`)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)

	r := e.ok(nil, "config")
	if strings.Contains(r.Stdout, nodetest.Key) || !strings.Contains(r.Stdout, MaskKey(nodetest.Key)) {
		t.Errorf("config does not mask the key:\n%s", r.Stdout)
	}
	for _, want := range []string{filepath.Join(e.home, ".config", "clawdspace", "config"), "$CLAWDSPACE_KEY", "$CLAWDSPACE_HOSTS", e.node.URL} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("config lacks %q:\n%s", want, r.Stdout)
		}
	}
	var v configView
	e.jsonOf(&v, "config", "--json")
	if v.Key != MaskKey(nodetest.Key) || v.KeySource != "$CLAWDSPACE_KEY" || len(v.Hosts) != 1 || v.Hosts[0] != e.node.URL {
		t.Errorf("config --json = %+v", v)
	}

	t.Run("older ~/.clawdspace", func(t *testing.T) {
		old := newBareEnv(t)
		text := "# written for the bash CLI\nexport CLAWDSPACE_KEY=\"" + nodetest.Key + "\"\nCLAWDSPACE_HOSTS='" + e.node.URL + "'\n"
		if err := os.WriteFile(filepath.Join(old.home, ".clawdspace"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		old.ok(nil, "list")
		r := old.ok(nil, "config")
		if !strings.Contains(r.Stdout, "(from "+filepath.Join(old.home, ".clawdspace")+")") || strings.Contains(r.Stdout, nodetest.Key) {
			t.Errorf("config:\n%s", r.Stdout)
		}
		// The environment wins over the file.
		old.env["CLAWDSPACE_KEY"] = "wrong-key-wrong-key"
		oneLineError(t, old.run(nil, "list"), 1, "wrong API key")
	})
	t.Run("config set", func(t *testing.T) {
		fresh := newBareEnv(t)
		fresh.ok(strings.NewReader(nodetest.Key+"\n"), "config", "set", "key", "-")
		r := fresh.ok(nil, "config", "set", "hosts", e.node.URL)
		if !strings.Contains(r.Stdout, "CLAWDSPACE_HOSTS") {
			t.Errorf("config set said %s", r)
		}
		file := filepath.Join(fresh.home, ".config", "clawdspace", "config")
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("config file: %v, %v", fi, err)
		}
		fresh.ok(nil, "list")
		if r := fresh.ok(nil, "config"); !strings.Contains(r.Stdout, "(from "+file+")") {
			t.Errorf("config:\n%s", r.Stdout)
		}
	})
}

func TestDashboardVersionCompletion(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)

	// A "browser" that records the URL it was given.
	got := filepath.Join(e.home, "opened")
	script := filepath.Join(e.home, "browser.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf %s \"$1\" > "+got+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.env["BROWSER"] = script
	r := e.ok(nil, "dashboard")
	if strings.TrimSpace(r.Stdout) != e.node.URL+"/" || strings.Contains(r.Stdout, nodetest.Key) {
		t.Errorf("dashboard printed %s", r)
	}
	// The CLI waits for a quick opener like this one.
	if opened, _ := os.ReadFile(got); string(opened) != e.node.URL+"/?key="+nodetest.Key {
		t.Errorf("the browser got %q", opened)
	}

	delete(e.env, "BROWSER")
	var d map[string]any
	e.jsonOf(&d, "dashboard", "--json", "--show-key")
	if d["url"] != e.node.URL+"/?key="+nodetest.Key || d["opened"] != false {
		t.Errorf("dashboard --json without a browser = %v", d)
	}

	if r := e.ok(nil, "version"); r.Stdout != "clawdspace dev\n" {
		t.Errorf("version = %q", r.Stdout)
	}
	var ver map[string]string
	e.jsonOf(&ver, "version", "--json")
	if ver["version"] != "dev" {
		t.Errorf("version --json = %v", ver)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := e.ok(nil, "completion", sh); !strings.Contains(r.Stdout, "clawdspace") {
			t.Errorf("completion %s printed %d bytes", sh, len(r.Stdout))
		}
	}
}

// TestFleetThroughOneNode: with only one node configured, the CLI reaches
// its fleet through it: create --node makes the space on the other node
// and says which, list --all shows every node's spaces with their node,
// and commands on a space find it through the fleet's list.
func TestFleetThroughOneNode(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{Hostname: "cli-b", Namespace: "clib"})
	a := nodetest.Start(t, nodetest.Options{Hostname: "cli-a", Namespace: "clia",
		Nodes: []fleet.StaticNode{{Name: "cli-a", URL: "http://127.0.0.1:1"}, {Name: "cli-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := newBareEnv(t)
	e.node = a
	e.env["CLAWDSPACE_HOSTS"] = a.URL
	e.env["CLAWDSPACE_KEY"] = nodetest.Key
	name := nodetest.Name(t, b.Engine, "far")

	r := e.ok(nil, "create", name, "--node", "cli-b", "-m", "64m")
	if !strings.Contains(r.Stdout, "Created space "+name+" on cli-b") {
		t.Fatalf("create --node cli-b: %s", r)
	}
	if _, err := b.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
		t.Fatalf("the space is not on cli-b: %v", err)
	}
	if _, err := a.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err == nil {
		t.Fatal("the space is on cli-a too")
	}

	var all []struct {
		Name string `json:"name"`
		Node string `json:"node"`
	}
	e.jsonOf(&all, "list", "--all", "--json")
	found := false
	for _, s := range all {
		found = found || (s.Name == name && s.Node == "cli-b")
	}
	if !found {
		t.Fatalf("list --all --json = %+v, want %s on cli-b", all, name)
	}
	if r := e.ok(nil, "list", "--all"); !strings.Contains(r.Stdout, "NODE") || !regexp.MustCompile(name+`\s+cli-b`).MatchString(r.Stdout) {
		t.Fatalf("list --all:\n%s", r)
	}
	if r := e.ok(nil, "exec", name, "--", "hostname"); r.Stdout != name+"\n" {
		t.Fatalf("exec through the fleet: %s", r)
	}
	// A node this machine cannot reach itself is reached through one it
	// can (what findInFleet returns then).
	via := &Client{BaseURL: a.URL, Key: nodetest.Key, Name: "cli-b", HTTP: newHTTPClient(), Via: "cli-b"}
	if _, err := via.GetSpace(t.Context(), name); err != nil {
		t.Fatalf("a space on cli-b through cli-a: %v", err)
	}
	direct := &Client{BaseURL: a.URL, Key: nodetest.Key, Name: "cli-a", HTTP: newHTTPClient()}
	if _, err := direct.GetSpace(t.Context(), name); !IsNotFound(err) {
		t.Fatalf("the space on cli-a itself = %v, want not found", err)
	}
}
