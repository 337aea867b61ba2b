package node_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adam91holt/clawdspace/nodetest"
)

// rawRequest writes head (request line and headers, without the blank
// line) and body on a new TCP connection to the node; closeWrite then
// half-closes it, as a client whose body ended does.
func rawRequest(t *testing.T, n *nodetest.Node, head, body string, closeWrite bool) (*http.Response, []byte, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	head += "\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + nodetest.Key + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, data, &bufConn{Conn: conn, r: br}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// bodyRoutes read a body before they look at the space; length is the
// Content-Length the tests announce (over 1 MiB, an upload is spooled).
var bodyRoutes = []struct {
	name, head string
	length     int
}{
	{"exec", "POST /api/spaces/t-nobody/exec HTTP/1.1\r\nContent-Type: application/json", 100},
	{"create", "POST /api/spaces HTTP/1.1\r\nContent-Type: application/json", 100},
	{"small raw upload", "PUT /api/spaces/t-nobody/file?path=/f HTTP/1.1\r\nContent-Type: application/octet-stream", 100},
	{"spooled raw upload", "PUT /api/spaces/t-nobody/file?path=/f HTTP/1.1\r\nContent-Type: application/octet-stream", 5 << 20},
}

// TestBodyShorterThanContentLength: a body that ends before its
// Content-Length is the client's mistake, 400, not 500.
func TestBodyShorterThanContentLength(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{})
	for _, tt := range bodyRoutes {
		t.Run(tt.name, func(t *testing.T) {
			length := tt.length
			head := tt.head + "\r\nContent-Length: " + strconv.Itoa(length)
			resp, body, _ := rawRequest(t, n, head, `{"command":"tr`, true)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "ended before its Content-Length of "+strconv.Itoa(length)+" bytes") {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
		})
	}
}

// TestBodyThatStalls: a body that stops arriving ends with 408 once
// BodyReadTimeout passes without a byte, and the connection is closed.
func TestBodyThatStalls(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{BodyReadTimeout: 300 * time.Millisecond})
	for _, tt := range bodyRoutes {
		t.Run(tt.name, func(t *testing.T) {
			length := tt.length
			head := tt.head + "\r\nContent-Length: " + strconv.Itoa(length)
			resp, body, conn := rawRequest(t, n, head, `{"command":"tr`, false)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "Request body not received in time") {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Fatal("the connection is still open after a 408")
			}
		})
	}
}

// TestBodyDeadlineEndsWithTheBody: the body's read deadline must not
// outlive the body: an exec that runs longer than BodyReadTimeout answers.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t, nodetest.Options{BodyReadTimeout: 200 * time.Millisecond})
	name := newSpace(t, n, "body-deadline")
	if out := execIn(t, n, name, "sleep 1.5; echo ok"); out.Stdout != "ok\n" || out.ExitCode != 0 {
		t.Fatalf("exec = %+v", out)
	}
}

// syncBuffer is a log destination for a node's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestClientGoneIsNotAnError: a client that disconnects while its exec
// runs is logged at debug, not as an error of the node.
func TestClientGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	n := nodetest.Start(t, nodetest.Options{Log: &log})
	name := newSpace(t, n, "client-gone")
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"command":"touch /workspace/started; sleep 30"}`
	_, err = io.WriteString(conn, "POST /api/spaces/"+name+"/exec HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+nodetest.Key+
		"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the exec to start", time.Minute, func() bool {
		return n.Do(t, http.MethodGet, "/api/spaces/"+name+"/file?path=/started", nil).Status == http.StatusOK
	})
	conn.Close()
	eventually(t, "the node to notice the client went away", time.Minute, func() bool {
		return strings.Contains(log.String(), "client went away") || strings.Contains(log.String(), "level=ERROR")
	})
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("logged as an error: %s", line)
		}
	}
}
