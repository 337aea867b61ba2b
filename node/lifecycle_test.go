package node_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
)

func TestStopAndStart(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := newSpace(t, n, "stopstart")
	steps := []struct {
		name       string
		path       string
		wantMsg    string
		wantStatus string
	}{
		{name: "stop", path: "/stop", wantMsg: "Space paused", wantStatus: "paused"},
		{name: "stop again", path: "/stop", wantMsg: "Space paused", wantStatus: "paused"},
		{name: "start", path: "/start", wantMsg: "Space started", wantStatus: "running"},
		{name: "start again", path: "/start", wantMsg: "Space started", wantStatus: "running"},
	}
	for _, st := range steps {
		// The agent plugin sends a JSON content type with an empty body.
		res := n.Do(t, http.MethodPost, "/api/spaces/"+name+st.path, "")
		if res.Status != http.StatusOK {
			t.Fatalf("%s: status %d, body %s", st.name, res.Status, res.Body)
		}
		if got := res.Map(t)["message"]; got != st.wantMsg {
			t.Errorf("%s: message = %v, want %q", st.name, got, st.wantMsg)
		}
		if got := getSpace(t, n, name).Status; got != st.wantStatus {
			t.Errorf("%s: status = %q, want %q", st.name, got, st.wantStatus)
		}
		if got := string(inspect(t, n, name).State.Status); got != st.wantStatus {
			t.Errorf("%s: container state = %q, want %q", st.name, got, st.wantStatus)
		}
	}

	// A container stopped behind the node's back starts again.
	timeout := 0
	if _, err := n.Raw().ContainerStop(t.Context(), "clawdspace-"+name, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("stopping the container: %v", err)
	}
	if got := getSpace(t, n, name).Status; got != "stopped" {
		t.Fatalf("status after a raw stop = %q, want stopped", got)
	}
	if got := listSpaces(t, n)[name].Status; got != "stopped" {
		t.Errorf("listed status after a raw stop = %q, want stopped", got)
	}
	// Pausing a stopped space changes nothing and is not an error.
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/stop", nil); res.Status != http.StatusOK {
		t.Errorf("stop of a stopped space: status %d, body %s", res.Status, res.Body)
	}
	if res := n.Do(t, http.MethodPost, "/api/spaces/"+name+"/start", nil); res.Status != http.StatusOK {
		t.Fatalf("start of a stopped space: status %d, body %s", res.Status, res.Body)
	}
	if got := getSpace(t, n, name).Status; got != "running" {
		t.Errorf("status after start = %q, want running", got)
	}
	if out := execIn(t, n, name, "echo back"); out.Stdout != "back\n" {
		t.Errorf("exec after start = %+v", out)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := nodetest.Name(t, n.Engine, "stats")
	sp := createSpace(t, n, name, map[string]any{"memory": "96m"})

	res := n.Do(t, http.MethodGet, "/api/spaces/"+name+"/stats", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("stats: status %d, body %s", res.Status, res.Body)
	}
	var raw struct {
		Stats map[string]any `json:"stats"`
	}
	res.JSON(t, &raw)
	for _, field := range []string{"cpuPercent", "memoryUsageBytes", "memoryLimitBytes", "pids", "networkRxBytes", "networkTxBytes", "blockReadBytes", "blockWriteBytes"} {
		v, ok := raw.Stats[field]
		if !ok {
			t.Errorf("stats has no %s: %s", field, res.Body)
			continue
		}
		if f, ok := v.(float64); !ok || f < 0 {
			t.Errorf("stats.%s = %v, want a non-negative number", field, v)
		}
	}
	var st struct {
		Stats struct {
			MemoryUsageBytes uint64 `json:"memoryUsageBytes"`
			MemoryLimitBytes int64  `json:"memoryLimitBytes"`
			PIDs             uint64 `json:"pids"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(res.Body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Stats.MemoryLimitBytes != sp.Memory || sp.Memory != 96<<20 {
		t.Errorf("memoryLimitBytes = %d, space memory = %d, want both %d", st.Stats.MemoryLimitBytes, sp.Memory, 96<<20)
	}
	if st.Stats.PIDs < 1 {
		t.Errorf("pids = %d, want at least the sleep", st.Stats.PIDs)
	}
	if st.Stats.MemoryUsageBytes == 0 {
		t.Error("memoryUsageBytes = 0 for a running space")
	}
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})

	t.Run("keeps the volume by default", func(t *testing.T) {
		name := newSpace(t, n, "keep")
		if out := execIn(t, n, name, "echo persisted > /workspace/keep.txt"); out.ExitCode != 0 {
			t.Fatalf("writing a file: %+v", out)
		}
		for _, q := range []string{"", "?removeVolume=false"} {
			res := n.Do(t, http.MethodDelete, "/api/spaces/"+name+q, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("DELETE%s: status %d, body %s", q, res.Status, res.Body)
			}
			if got := res.Map(t)["message"]; got != "Space destroyed" {
				t.Errorf("message = %v, want Space destroyed", got)
			}
			if containerExists(t, n, name) {
				t.Error("the container is still there")
			}
			if !volumeExists(t, n, name) {
				t.Fatal("the volume was removed without removeVolume=true")
			}
			if _, ok := listSpaces(t, n)[name]; ok {
				t.Error("the destroyed space is still listed")
			}
			wantError(t, n.Do(t, http.MethodGet, "/api/spaces/"+name, nil), http.StatusNotFound, "Space not found")

			// The same name gets its old workspace back.
			createSpace(t, n, name, map[string]any{"memory": "64m"})
			if out := execIn(t, n, name, "cat /workspace/keep.txt"); out.Stdout != "persisted\n" {
				t.Errorf("after re-create, keep.txt = %+v, want persisted", out)
			}
		}
	})

	t.Run("removes the volume when asked", func(t *testing.T) {
		name := newSpace(t, n, "rmvol")
		res := n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume=true", nil)
		if res.Status != http.StatusOK {
			t.Fatalf("DELETE: status %d, body %s", res.Status, res.Body)
		}
		wantNothingLeft(t, n, name)
		// A second destroy finds nothing.
		wantError(t, n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume=true", nil), http.StatusNotFound, "Space not found")
	})

	t.Run("bad removeVolume", func(t *testing.T) {
		name := newSpace(t, n, "badrm")
		for _, v := range []string{"maybe", "yes!", "2"} {
			wantErrorContains(t, n.Do(t, http.MethodDelete, "/api/spaces/"+name+"?removeVolume="+v, nil), http.StatusBadRequest, "removeVolume")
		}
		if !containerExists(t, n, name) || !volumeExists(t, n, name) {
			t.Error("a refused destroy removed something")
		}
	})
}
