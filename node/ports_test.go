package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// portSpace makes a space of the sandbox image (python3) running the port
// test servers.
func portSpace(t *testing.T, n *nodetest.Node, base string) string {
	t.Helper()
	name := nodetest.Name(t, n.Engine, base)
	createSpace(t, n, name, map[string]any{"memory": "256m", "image": sandboxImage()})
	nodetest.ServePorts(t, n, name)
	return name
}

// tunnelURL is the WebSocket address of the port tunnel on a node.
func tunnelURL(base, space string, port any) string {
	return "ws://" + strings.TrimPrefix(base, "http://") + "/api/spaces/" + space + "/ports/" + fmt.Sprint(port) + "/connect"
}

// dialTunnel opens the port tunnel with the test key (unless the client
// is a tailnet device's) and headers, in pairs, or a query ("?node=X") as
// the last argument alone; on a refusal it returns the answer.
func dialTunnel(t testing.TB, hc *http.Client, base, space string, port any, headers ...string) (*api.Tunnel, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if hc == nil || !strings.HasPrefix(base, "http://100.") {
		h.Set("Authorization", "Bearer "+nodetest.Key)
	}
	query := ""
	if len(headers)%2 == 1 {
		query, headers = headers[len(headers)-1], headers[:len(headers)-1]
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, tunnelURL(base, space, port)+query, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	return api.NewTunnel(ws), resp, nil
}

// refusedBefore checks that the tunnel was refused before the upgrade
// with status and a JSON error containing msg.
func refusedBefore(t *testing.T, resp *http.Response, err error, status int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("tunnel opened, want %d", status)
	}
	if resp == nil {
		t.Fatalf("tunnel refused without an answer: %v", err)
	}
	var e api.Error
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, msg) {
		t.Fatalf("tunnel refusal = %d %s, want %d with %q", resp.StatusCode, b, status, msg)
	}
}

// echoHalfClose sends data through c, half-closes, and returns what came
// back until EOF.
func echoHalfClose(t *testing.T, c interface {
	io.ReadWriter
	CloseWrite() error
}, data []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing: %v", err)
	}
	return got
}

// httpOver sends a GET over c and returns the answer.
func httpOver(t *testing.T, c io.ReadWriter, path string) (*http.Response, string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: space\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

// TestPortTunnel drives the API tunnel of a node without a tailnet: an
// HTTP server, a stream with half-close and a server bound to the space's
// loopback; forwards are refused with the way to the tunnel; bad input
// is refused before the upgrade; the connection is audited with its bytes.
func TestPortTunnel(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := portSpace(t, n, "tunnel")

	// An HTTP request, through the tunnel.
	tun, _, err := dialTunnel(t, n.HTTP, n.URL, name, nodetest.PortHTTP)
	if err != nil {
		t.Fatalf("opening the tunnel: %v", err)
	}
	res, body := httpOver(t, tun, "/hello.txt")
	if res.StatusCode != 200 || body != "hello from the space\n" {
		t.Fatalf("GET through the tunnel = %d %q", res.StatusCode, body)
	}
	tun.Close()

	// A stream with half-close: the server sees EOF, answers it all, and
	// the client then reads EOF.
	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB
	echoThrough := func(port int) {
		t.Helper()
		tun, _, err := dialTunnel(t, n.HTTP, n.URL, name, port)
		if err != nil {
			t.Fatalf("opening the tunnel to %d: %v", port, err)
		}
		if got := echoHalfClose(t, tun, data); !bytes.Equal(got, data) {
			t.Fatalf("port %d echoed %d bytes, want %d", port, len(got), len(data))
		}
		tun.Close()
	}
	echoThrough(nodetest.PortEcho)
	nodetest.WaitUntil(t, "the connection's audit row", func() bool {
		ev, ok := findEvent(t, n, name, spaces.EventPortConnection, func(e spaces.Event) bool {
			return metaInt(e, "port") == nodetest.PortEcho
		})
		return ok && metaInt(ev, "bytesIn") == int64(len(data)) && metaInt(ev, "bytesOut") == int64(len(data))
	})

	// The listening ports, with the loopback one marked; forwards are not
	// served without a tailnet.
	var ports api.Ports
	n.Do(t, "GET", "/api/spaces/"+name+"/ports", nil).JSON(t, &ports)
	if ports.Served || !ports.Detected || !strings.Contains(ports.Note, "clawdspace forward") {
		t.Fatalf("ports = %+v", ports)
	}
	for _, l := range ports.Listening {
		if l.Port == nodetest.PortLoopback && !l.Loopback || l.Port == nodetest.PortHTTP && l.Loopback {
			t.Errorf("listening port %+v: wrong loopback flag", l)
		}
	}
	r := n.Do(t, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": 8000})
	wantError(t, r, http.StatusConflict, "")
	if !strings.Contains(string(r.Body), "clawdspace forward") {
		t.Fatalf("refused forward without a tailnet says %s", r.Body)
	}

	// Bad input.
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
	}{
		{"port 0", "POST", "/ports", map[string]any{"port": 0}, 400},
		{"port 70000", "POST", "/ports", map[string]any{"port": 70000}, 400},
		{"port abc", "POST", "/ports", map[string]any{"port": "abc"}, 400},
		{"node port -1", "POST", "/ports", map[string]any{"port": 80, "nodePort": -1}, 400},
		{"close abc", "DELETE", "/ports/abc", nil, 400},
		{"close 0", "DELETE", "/ports/0", nil, 400},
		{"close 70000", "DELETE", "/ports/70000", nil, 400},
		{"close unforwarded", "DELETE", "/ports/8000", nil, 404},
		{"connect without upgrade", "GET", "/ports/8000/connect", nil, 400},
	} {
		r := n.Do(t, c.method, "/api/spaces/"+name+c.path, c.body)
		wantError(t, r, c.status, "")
	}
	r = n.Do(t, "GET", "/api/spaces/t-no-such-space/ports", nil)
	wantError(t, r, http.StatusNotFound, "")
	r = n.Do(t, "POST", "/api/spaces/t-no-such-space/ports", map[string]any{"port": 80})
	wantError(t, r, http.StatusNotFound, "")
	for _, c := range []struct {
		space  string
		port   any
		status int
		msg    string
	}{
		{name, 0, 400, "port must be"},
		{name, 70000, 400, "port must be"},
		{name, "abc", 400, "port must be"},
		{"t-no-such-space", 80, 404, "not found"},
		{name, 9, 409, "9"},
	} {
		_, resp, err := dialTunnel(t, n.HTTP, n.URL, c.space, c.port)
		refusedBefore(t, resp, err, c.status, c.msg)
	}
	// A page of another site may not open a tunnel.
	_, resp, err := dialTunnel(t, n.HTTP, n.URL, name, nodetest.PortHTTP, "Origin", "https://evil.example")
	refusedBefore(t, resp, err, 403, "Cross-origin")

	// A server bound to the space's own loopback is reached too.
	echoThrough(nodetest.PortLoopback)
}

// findEvent returns the newest event of typ on space that match accepts.
func findEvent(t *testing.T, n *nodetest.Node, space, typ string, match func(spaces.Event) bool) (spaces.Event, bool) {
	t.Helper()
	evs, err := n.Store.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ && match(evs[i]) {
			return evs[i], true
		}
	}
	return spaces.Event{}, false
}

// metaInt reads a number of an event's meta.
func metaInt(e spaces.Event, key string) int64 {
	switch v := e.Meta[key].(type) {
	case float64:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	case uint16:
		return int64(v)
	case json.Number:
		i, _ := v.Int64()
		return i
	}
	return -1
}

// sourceRead asks the source server for size bytes over c and reads them.
func sourceRead(c io.ReadWriter, size int64, buf []byte) error {
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(size))
	if _, err := c.Write(req[:]); err != nil {
		return err
	}
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
	if err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("read %d bytes, want %d", got, size)
	}
	return nil
}

// containerAddr is the space's address on the engine's bridge, for the
// direct baseline of the benchmarks.
func containerAddr(t testing.TB, n *nodetest.Node, space string, port int) string {
	t.Helper()
	res, err := n.Raw().ContainerInspect(t.Context(), n.Engine.ContainerName(space), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, nw := range res.Container.NetworkSettings.Networks {
		if nw.IPAddress.IsValid() {
			return net.JoinHostPort(nw.IPAddress.String(), strconv.Itoa(port))
		}
	}
	t.Fatalf("space %s has no address", space)
	return ""
}

// TestPortTunnelPlainForm: the tunnel's plain form (Upgrade:
// clawdspace-tcp) answers 101 and then is the TCP connection itself: an
// HTTP request, a 3.2 MB echo with half-close, bytes audited each way;
// its refusals come before the upgrade as JSON errors.
func TestPortTunnelPlainForm(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	name := portSpace(t, n, "plain")
	open := func(t *testing.T, space string, port int) (net.Conn, *http.Response) {
		return dialPlain(t, n.URL, space, port)
	}

	c, res := open(t, name, nodetest.PortHTTP)
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != api.TCPUpgrade {
		t.Fatalf("answer %d %v", res.StatusCode, res.Header)
	}
	r, body := httpOver(t, c, "/hello.txt")
	if r.StatusCode != 200 || body != "hello from the space\n" {
		t.Fatalf("GET through the plain tunnel = %d %q", r.StatusCode, body)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000)
	c, _ = open(t, name, nodetest.PortEcho)
	if got := echoHalfClose(t, c.(*net.TCPConn), data); !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(data))
	}
	nodetest.WaitUntil(t, "the connection's audit row", func() bool {
		ev, ok := findEvent(t, n, name, spaces.EventPortConnection, func(e spaces.Event) bool {
			return metaInt(e, "port") == nodetest.PortEcho && metaInt(e, "bytesIn") == int64(len(data))
		})
		return ok && metaInt(ev, "bytesOut") == int64(len(data))
	})

	// Refusals before the upgrade.
	if _, res := open(t, name, 9); res.StatusCode != http.StatusConflict {
		t.Errorf("a port where nothing listens: %d, want 409", res.StatusCode)
	}
	if _, res := open(t, "t-no-such-space", nodetest.PortHTTP); res.StatusCode != http.StatusNotFound {
		t.Errorf("a missing space: %d, want 404", res.StatusCode)
	}
}

// dialPlain opens the port tunnel's plain form and returns the
// connection and the node's answer (101, or a refusal).
func dialPlain(tb testing.TB, base, space string, port int) (net.Conn, *http.Response) {
	tb.Helper()
	host := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /api/spaces/%s/ports/%d/connect HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n",
		space, port, host, nodetest.Key, api.TCPUpgrade)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if res.StatusCode == http.StatusSwitchingProtocols && br.Buffered() != 0 {
		tb.Fatalf("%d bytes after the 101 answer", br.Buffered())
	}
	return c, res
}
