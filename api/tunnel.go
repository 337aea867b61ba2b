package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/coder/websocket"
)

// The port tunnel (GET /api/spaces/NAME/ports/PORT/connect) carries one
// TCP connection over a WebSocket: each binary message is bytes of the
// stream, in order; an empty binary message says that its sender will send
// no more (a TCP half-close: the other end reads EOF); text messages are
// refused. The node closes the WebSocket with 1000 when both directions
// have ended, or with another status and a reason when the connection to
// the space failed.
//
// The tunnel has a plain form too, for clients that are not browsers: a
// request with "Connection: Upgrade" and "Upgrade: clawdspace-tcp" (the
// value of TCPUpgrade) is answered, once everything that can be refused
// was, with 101 Switching Protocols, after which the HTTP connection is
// the TCP connection, half-close included. It skips the framing: the
// node moves the bytes in the kernel.
const TCPUpgrade = "clawdspace-tcp"

const (
	// TunnelMaxMessage is the largest message either end sends; both
	// ends refuse larger ones.
	TunnelMaxMessage = 1 << 20
	// tunnelReadLimit is the read limit of a tunnel's WebSocket: a
	// message and its frame header.
	tunnelReadLimit = TunnelMaxMessage + 64
)

// Tunnel is one end of the port tunnel over a WebSocket: a byte stream
// with half-close. Reads and writes may run at once (one reader, one
// writer).
type Tunnel struct {
	ws *websocket.Conn

	rmu sync.Mutex
	cur io.Reader // the message being read
	eof bool

	wmu    sync.Mutex
	closed bool // an empty message was sent
}

// NewTunnel makes ws one end of a port tunnel and sets its read limit.
func NewTunnel(ws *websocket.Conn) *Tunnel {
	ws.SetReadLimit(tunnelReadLimit)
	return &Tunnel{ws: ws}
}

// Read reads the stream: io.EOF once the other end half-closed, or closed
// the WebSocket normally.
func (t *Tunnel) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.eof {
		return 0, io.EOF
	}
	for {
		if t.cur == nil {
			typ, r, err := t.ws.Reader(context.Background())
			if err != nil {
				if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
					t.eof = true
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.MessageBinary {
				_ = t.ws.Close(websocket.StatusUnsupportedData, "the port tunnel carries binary messages only")
				return 0, errors.New("port tunnel: a text message arrived")
			}
			// An empty message is the half-close. Control frames (the
			// other end's pings) are still read from then on.
			n, err := r.Read(p)
			if n == 0 && errors.Is(err, io.EOF) {
				t.eof = true
				t.ws.CloseRead(context.Background())
				return 0, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			t.cur = r
			if n > 0 {
				return n, nil
			}
			continue
		}
		n, err := t.cur.Read(p)
		if errors.Is(err, io.EOF) {
			t.cur = nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

// Write sends p as one or more binary messages.
func (t *Tunnel) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed {
		return 0, errors.New("port tunnel: write after CloseWrite")
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), TunnelMaxMessage)]
		if err := t.ws.Write(context.Background(), websocket.MessageBinary, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// CloseWrite tells the other end that no more bytes come (it reads EOF).
func (t *Tunnel) CloseWrite() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.ws.Write(context.Background(), websocket.MessageBinary, nil)
}

// Close ends the tunnel with a normal closure.
func (t *Tunnel) Close() error {
	return t.CloseWith(websocket.StatusNormalClosure, "")
}

// CloseWith ends the tunnel with a status and a reason (at most 123
// bytes).
func (t *Tunnel) CloseWith(code websocket.StatusCode, reason string) error {
	if len(reason) > 123 {
		reason = reason[:120] + "..."
	}
	err := t.ws.Close(code, reason)
	if err != nil && websocket.CloseStatus(err) != -1 {
		return nil
	}
	return err
}

// TunnelError is how a tunnel that the node closed with an error
// reads: its status and reason.
func TunnelError(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.StatusNormalClosure {
		if ce.Reason != "" {
			return fmt.Errorf("the tunnel ended: %s", ce.Reason)
		}
		return fmt.Errorf("the tunnel ended: %s", ce.Code)
	}
	return err
}
