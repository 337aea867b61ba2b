package node

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/api"
)

// BenchmarkTunnelFraming measures the port tunnel's own cost, without an
// engine or a space: 256 MiB from a TCP source on loopback read directly,
// and read through pipe and api.Tunnel over a WebSocket on loopback, as
// the node carries a tunnel. x-direct is the throughput ratio (medians).
func BenchmarkTunnelFraming(b *testing.B) {
	const size = 256 << 20
	src, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	go func() {
		chunk := make([]byte, 1<<20)
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var req [8]byte
				if _, err := io.ReadFull(c, req[:]); err != nil {
					return
				}
				for left := int64(binary.BigEndian.Uint64(req[:])); left > 0; {
					n, err := c.Write(chunk[:min(left, int64(len(chunk)))])
					if err != nil {
						return
					}
					left -= int64(n)
				}
			}()
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc, err := net.Dial("tcp", src.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			tc.Close()
			return
		}
		pipe(api.NewTunnel(ws), asHalfConn(tc))
	}))
	defer srv.Close()
	buf := make([]byte, 256<<10)
	read := func(c io.ReadWriter) {
		var req [8]byte
		binary.BigEndian.PutUint64(req[:], size)
		if _, err := c.Write(req[:]); err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
	direct := func() {
		c, err := net.Dial("tcp", src.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		// The source closes after size bytes: EOF ends the copy.
		read(c)
	}
	tunnel := func() {
		ws, _, err := websocket.Dial(b.Context(), "ws://"+strings.TrimPrefix(srv.URL, "http://"), nil)
		if err != nil {
			b.Fatal(err)
		}
		t := api.NewTunnel(ws)
		defer t.Close()
		read(t)
	}
	var ds, ts []time.Duration
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			if (i+k)%2 == 0 {
				ds = append(ds, since(direct))
			} else {
				ts = append(ts, since(tunnel))
			}
		}
	}
	mbps := func(d []time.Duration) float64 { return size / 1e6 / medianOf(d).Seconds() }
	b.ReportMetric(mbps(ds), "direct-MB/s")
	b.ReportMetric(mbps(ts), "tunnel-MB/s")
	b.ReportMetric(mbps(ts)/mbps(ds), "x-direct")
}

func since(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func medianOf(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
