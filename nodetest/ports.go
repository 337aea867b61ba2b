package nodetest

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// Ports of the servers ServePorts starts in a space.
const (
	// PortHTTP is python3 -m http.server, serving /workspace.
	PortHTTP = 8000
	// PortWebSocket echoes each WebSocket message back.
	PortWebSocket = 8765
	// PortEcho echoes a TCP stream and half-closes once the client has.
	PortEcho = 8766
	// PortSource reads an 8-byte big-endian count and sends that many
	// zero bytes, then closes.
	PortSource = 8767
	// PortLoopback is an echo server bound to the space's 127.0.0.1 only.
	PortLoopback = 8768
)

// portServers is the python3 program behind ServePorts (the sandbox image
// has python3; the standard library only).
const portServers = `
import base64, hashlib, socket, struct, threading

def serve(addr, port, handler):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=run, args=(handler, c), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()

def run(handler, c):
    try:
        handler(c)
    except Exception:
        pass
    finally:
        c.close()

def echo(c):
    while True:
        d = c.recv(262144)
        if not d:
            c.shutdown(socket.SHUT_WR)
            return
        c.sendall(d)

def source(c):
    n = b""
    while len(n) < 8:
        d = c.recv(8 - len(n))
        if not d:
            return
        n += d
    left = struct.unpack(">Q", n)[0]
    chunk = memoryview(bytes(1 << 20))
    while left > 0:
        k = min(left, len(chunk))
        c.sendall(chunk[:k])
        left -= k
    c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass

def websocket(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            return
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    def recvn(n):
        nonlocal buf
        while len(buf) < n:
            d = c.recv(65536)
            if not d:
                raise EOFError()
            buf += d
        out, buf = buf[:n], buf[n:]
        return out
    def send(op, data):
        n = len(data)
        if n < 126:
            h = struct.pack(">BB", 0x80 | op, n)
        elif n < 65536:
            h = struct.pack(">BBH", 0x80 | op, 126, n)
        else:
            h = struct.pack(">BBQ", 0x80 | op, 127, n)
        c.sendall(h + data)
    while True:
        b0, b1 = recvn(2)
        op, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recvn(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recvn(8))[0]
        mask = recvn(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(x ^ mask[i % 4] for i, x in enumerate(recvn(n)))
        if op == 8:
            send(8, data[:2])
            return
        if op == 9:
            send(10, data)
            continue
        if op in (1, 2):
            send(op, data)

serve("0.0.0.0", 8765, websocket)
serve("0.0.0.0", 8766, echo)
serve("0.0.0.0", 8767, source)
serve("127.0.0.1", 8768, echo)
import http.server, functools
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), functools.partial(http.server.SimpleHTTPRequestHandler, directory="/workspace")).serve_forever()
`

// doer sends API requests to a node: a Node or a ChildNode.
type doer interface {
	Do(tb testing.TB, method, path string, body any, headers ...string) Response
}

// ServePorts starts test servers in a running space of the sandbox image
// (PortHTTP, PortWebSocket, PortEcho, PortSource, PortLoopback) and waits
// until the node sees them listen.
func ServePorts(tb testing.TB, n doer, space string) {
	tb.Helper()
	r := n.Do(tb, http.MethodPost, "/api/spaces/"+space+"/exec", map[string]any{
		"command": []string{"sh", "-c", `printf 'hello from the space\n' > /workspace/hello.txt; setsid python3 -c "$0" >/tmp/ports.log 2>&1 </dev/null &`, portServers},
	})
	if r.Status != http.StatusOK {
		tb.Fatalf("starting the port servers: %d %s", r.Status, r.Body)
	}
	want := []uint16{PortHTTP, PortWebSocket, PortEcho, PortSource, PortLoopback}
	WaitUntil(tb, "the port servers to listen", func() bool {
		r := n.Do(tb, http.MethodGet, "/api/spaces/"+space+"/ports", nil)
		var v struct {
			Listening []struct {
				Port uint16 `json:"port"`
			} `json:"listening"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &v) != nil {
			return false
		}
		for _, p := range want {
			if !slices.ContainsFunc(v.Listening, func(l struct {
				Port uint16 `json:"port"`
			}) bool {
				return l.Port == p
			}) {
				return false
			}
		}
		return true
	})
}
