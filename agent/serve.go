package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/http2"
)

// Serve dials the node's socket and serves the node's requests on that
// connection until it ends. The agent keeps nothing between connections:
// when the node goes away it exits, and the node starts a new one.
func Serve(ctx context.Context, socket string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Hello{Version: Version})
	})
	mux.HandleFunc("POST /exec", serveExec)
	mux.HandleFunc("POST /terminal", serveTerminal)
	mux.HandleFunc("GET /top", serveTop)
	srv := &http2.Server{MaxConcurrentStreams: 1024}
	srv.ServeConn(conn, &http2.ServeConnOpts{Context: ctx, Handler: mux})
	return nil
}

// serveExec runs one process (see ExecRequest and the frames) in a session
// of its own, and kills that session when the node resets the stream.
func serveExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := readRequest(r.Body, &req); err != nil || len(req.Cmd) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	env := markerFirst(mergeEnv(baseEnv(), req.Env))
	path, err := lookPath(req.Cmd[0], env)
	if err != nil {
		http.Error(w, err.Error(), StatusNotStarted)
		return
	}
	cmd := &exec.Cmd{Path: path, Args: req.Cmd, Env: env, Dir: req.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	var stdin io.WriteCloser
	if req.Stdin {
		if stdin, err = cmd.StdinPipe(); err != nil {
			http.Error(w, err.Error(), StatusNotStarted)
			return
		}
	}
	fw := &frames{w: w, f: w.(http.Flusher)}
	cmd.Stdout, cmd.Stderr = fw.stream(FrameStdout), fw.stream(FrameStderr)
	// A node that gave up on the answer (it reset the stream) must not
	// find the command run anyway.
	if r.Context().Err() != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		http.Error(w, err.Error(), StatusNotStarted)
		return
	}
	pid := cmd.Process.Pid
	w.WriteHeader(http.StatusOK)
	fw.flush()
	stop := contextAfter(r, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	defer stop()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, r.Body)
			stdin.Close()
		}()
	}
	err = cmd.Wait()
	// Ended on its own: what it left in the background lives on, as with
	// the engine's exec, even when the node resets the stream now.
	stop()
	fw.write(FrameExit, ExitFrame(exitCode(err)))
}

// readRequest reads the length-prefixed JSON that starts a request body.
func readRequest(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxRequest {
		return errors.New("request too large")
	}
	return json.NewDecoder(io.LimitReader(r, int64(size))).Decode(v)
}

// exitCode is the code a shell would report for what Wait returned.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 126
	}
	return 0
}

// frames writes the frames of one answer, flushing each so output reaches
// the node as it is written.
type frames struct {
	mu  sync.Mutex
	w   io.Writer
	f   http.Flusher
	err error
}

func (f *frames) write(kind byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.err = WriteFrame(f.w, kind, p); f.err == nil {
		f.f.Flush()
	}
	return f.err
}

func (f *frames) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.f.Flush()
}

func (f *frames) stream(kind byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		n := len(p)
		for len(p) > 0 {
			c := p[:min(len(p), MaxFrame)]
			if err := f.write(kind, c); err != nil {
				return n - len(p), err
			}
			p = p[len(c):]
		}
		return n, nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// baseEnv is the agent's environment (the container's, as the engine gave
// it to the agent's own exec) without the node's markers, which each exec
// brings anew.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLAWDSPACE_NODE_RUN=") && !strings.HasPrefix(kv, ExecMarkerEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// markerFirst puts the exec's marker first in env, where the node's kill
// finds it reading only the start of each process's environment.
func markerFirst(env []string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, ExecMarkerEnv+"=") {
			return append(append([]string{kv}, env[:i]...), env[i+1:]...)
		}
	}
	return env
}

// mergeEnv sets the exec's variables over the base, as the engine's exec
// does over the container's.
func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range append(base, over...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// lookPath finds name on the exec's PATH, as the engine's exec would.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("executable file not found in $PATH: " + name)
}

// contextAfter calls f when the node resets the request's stream.
func contextAfter(r *http.Request, f func()) func() bool {
	return context.AfterFunc(r.Context(), f)
}
