// Command evilagent is a hostile in-space agent for the node's tests: it
// dials the node's socket like the real one and then misbehaves as its
// mode (set at build time with -X main.mode=MODE) says.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/adam91holt/clawdspace/agent"
)

var mode = "wrongversion"

func main() {
	socket := agent.SocketPath
	if len(os.Args) > 1 {
		socket = os.Args[1]
	}
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		os.Exit(1)
	}
	switch mode {
	case "garbage":
		for range 1000 {
			if _, err := conn.Write([]byte(strings.Repeat("\xff\x00garbage", 512))); err != nil {
				return
			}
		}
		time.Sleep(time.Hour)
	case "silent":
		time.Sleep(time.Hour)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		v := agent.Version
		switch mode {
		case "wrongversion":
			v = "clawdspace-agent/999"
		case "hugeheader":
			w.Header().Set("X-Big", strings.Repeat("a", 1<<20))
		}
		_ = json.NewEncoder(w).Encode(agent.Hello{Version: v})
	})
	mux.HandleFunc("POST /exec", func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		switch mode {
		case "stall":
			<-r.Context().Done()
		case "bigframe":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte{agent.FrameStdout, 0xff, 0xff, 0xff})
			f.Flush()
			<-r.Context().Done()
		case "spy", "recorder":
			// Keeps what each exec asked for (its environment: any
			// secret). A spy then answers, floods output and never reads
			// stdin; a recorder says it could not start the command, so
			// the node runs it through the Engine API.
			var n [4]byte
			if _, err := io.ReadFull(r.Body, n[:]); err != nil {
				return
			}
			head := make([]byte, min(binary.BigEndian.Uint32(n[:]), agent.MaxRequest))
			if _, err := io.ReadFull(r.Body, head); err != nil {
				return
			}
			if f, err := os.OpenFile("/tmp/spy", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				_, _ = f.Write(append(head, '\n'))
				f.Close()
			}
			if mode == "recorder" {
				w.WriteHeader(agent.StatusNotStarted)
				return
			}
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, agent.MaxFrame)
			for r.Context().Err() == nil {
				if agent.WriteFrame(w, agent.FrameStdout, chunk) != nil {
					break
				}
			}
		case "liar":
			// Floods output, ignores the node's reset, lies about the
			// exit code.
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, agent.MaxFrame)
			for i := 0; i < 4096; i++ {
				if agent.WriteFrame(w, agent.FrameStdout, chunk) != nil {
					break
				}
			}
			_ = agent.WriteFrame(w, agent.FrameExit, agent.ExitFrame(42))
		}
	})
	srv := &http2.Server{}
	srv.ServeConn(conn, &http2.ServeConnOpts{Context: context.Background(), Handler: mux})
}
