package main

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// TestChaosUpload kills the node while it writes a new 100 MB file into a
// space (issue 10, item 3): after the restart the file is absent or
// complete, never truncated, and start-up removed the hidden partial file.
func TestChaosUpload(t *testing.T) {
	n := nodetest.StartChildNode(t, nodetest.ChildConfig{})
	name := nodetest.Name(t, n.Engine, "cu")
	if r := n.Do(t, "POST", "/api/spaces", `{"name":"`+name+`","template":"offline","memory":"64m"}`); r.Status != http.StatusCreated {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	vol, err := n.Engine.Client().VolumeInspect(t.Context(), n.Engine.VolumeName(name), client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws := vol.Volume.Mountpoint
	data := make([]byte, 100<<20)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	want := sha256.Sum256(data)

	rounds := min(chaosRounds(t), 4)
	var complete, absent int
	for round := range rounds {
		file := "big-" + strconv.Itoa(round) + ".bin"
		// The upload's hidden file carries the node run and a random part.
		tmp := filepath.Join(ws, "."+file+".*"+spaces.UploadSuffix)
		var wg sync.WaitGroup
		wg.Go(func() {
			req, err := http.NewRequest("PUT", n.URL+"/api/spaces/"+name+"/file?path=/"+file, bytes.NewReader(data))
			if err != nil {
				return
			}
			req.Header.Set("Authorization", "Bearer "+nodetest.Key)
			req.Header.Set("Content-Type", "application/octet-stream")
			if resp, err := n.HTTP.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		// Kill once the node writes into the space (the upload is spooled
		// first), at a random point of that write.
		deadline := time.Now().Add(time.Minute)
		for !globExists(tmp) && !exists(filepath.Join(ws, file)) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the node never started writing into the space", round)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(randomDelay(50 * time.Millisecond))
		n.Kill()
		wg.Wait()
		n.Restart()

		got, err := os.ReadFile(filepath.Join(ws, file))
		switch {
		case os.IsNotExist(err):
			absent++
		case err != nil:
			t.Fatal(err)
		case len(got) != len(data) || sha256.Sum256(got) != want:
			t.Fatalf("round %d: %s has %d bytes after the restart (want absent or %d, and the same content)", round, file, len(got), len(data))
		default:
			complete++
		}
		var left []string
		_ = filepath.WalkDir(ws, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, spaces.UploadSuffix) {
				left = append(left, p)
			}
			return nil
		})
		if len(left) > 0 {
			t.Fatalf("round %d: partial uploads left after the restart: %v", round, left)
		}
	}
	t.Logf("after the kill: %d complete, %d absent", complete, absent)
	if absent == 0 {
		t.Log("every kill came after the rename; no partial write was tested")
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// globExists reports whether a file matches pattern.
func globExists(pattern string) bool {
	m, _ := filepath.Glob(pattern)
	return len(m) > 0
}
