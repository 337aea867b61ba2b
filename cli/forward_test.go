package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/nodetest"
)

// TestForwardBinary runs `clawdspace forward` (the built binary) against a
// real node: an HTTP server, a WebSocket echo server and a stream with
// half-close in a space, reached on 127.0.0.1; a port where nothing listens
// is reported on stderr; `ports` lists and `ports open` explains why a
// node without a tailnet serves no forwards; Ctrl-C ends it cleanly.
func TestForwardBinary(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := nodetest.Name(t, e.node.Engine, "fwd")
	image := os.Getenv("CLAWDSPACE_IMAGE")
	if image == "" {
		image = "clawdspace:latest"
	}
	if r := e.node.Do(t, "POST", "/api/spaces", map[string]any{"name": name, "memory": "256m", "image": image}); r.Status != 201 {
		t.Fatalf("creating %s: %d %s", name, r.Status, r.Body)
	}
	nodetest.ServePorts(t, e.node, name)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := e.command(ctx, "forward", name, "8000:0", "8765:0", "8766:0", "9:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := newLineWaiter(stdout)
	re := regexp.MustCompile(`^Forwarding (127\.0\.0\.1:\d+) -> ` + regexp.QuoteMeta(name) + `:(\d+) \(on `)
	local := map[string]string{}
	for range 4 {
		l := lines.wait(t, time.Minute, func(l string) bool { return re.MatchString(l) && local[re.FindStringSubmatch(l)[2]] == "" })
		m := re.FindStringSubmatch(l)
		local[m[2]] = m[1]
	}

	// HTTP.
	res, err := http.Get("http://" + local["8000"] + "/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "hello from the space\n" {
		t.Fatalf("GET through clawdspace forward = %d %q", res.StatusCode, body)
	}

	// A WebSocket.
	ws, _, err := websocket.Dial(ctx, "ws://"+local["8765"]+"/", nil)
	if err != nil {
		t.Fatalf("WebSocket through clawdspace forward: %v", err)
	}
	ws.SetReadLimit(-1)
	msg := strings.Repeat("websocket ", 30_000)
	if err := ws.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := ws.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("WebSocket echo: %d bytes, %v", len(got), err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// A stream with half-close.
	c, err := net.Dial("tcp", local["8766"])
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("half-close "), 300_000)
	go func() {
		_, _ = c.Write(data)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(bufio.NewReader(c))
	c.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through clawdspace forward: %d bytes of %d, %v", len(got), len(data), err)
	}

	// Nothing listens on port 9: the connection closes, stderr says why.
	c, err = net.Dial("tcp", local["9"])
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a connection to a port where nothing listens read %d bytes", n)
	}
	c.Close()
	nodetest.WaitUntil(t, "stderr to name port 9", func() bool { return strings.Contains(stderr.String(), name+":9: ") })

	// Ctrl-C ends it with exit 0.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clawdspace forward after Ctrl-C: %v; stderr %s", err, stderr.String())
	}

	r := e.ok(nil, "ports", name)
	if !regexp.MustCompile(`(?m)^8000\s+0\.0\.0\.0\s+-$`).MatchString(r.Stdout) || !regexp.MustCompile(`(?m)^8768\s+127\.0\.0\.1\s+-$`).MatchString(r.Stdout) {
		t.Errorf("ports lists:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "clawdspace forward") {
		t.Errorf("ports does not say how to reach a port without a tailnet: %q", r.Stderr)
	}
	r = e.run(nil, "ports", "open", name, "8000")
	oneLineError(t, r, 1, "not on a tailnet")
	r = e.run(nil, "forward", name, "0")
	if r.Code != 2 || !strings.Contains(r.Stderr, "bad port") {
		t.Errorf("forward with port 0: %s", r)
	}
}
