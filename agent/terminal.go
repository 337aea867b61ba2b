package agent

import (
	"encoding/binary"
	"net/http"
	"os/exec"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// serveTerminal runs one process on a new TTY (see TerminalRequest). The
// node's reset of the stream kills the TTY's session.
func serveTerminal(w http.ResponseWriter, r *http.Request) {
	var req TerminalRequest
	if err := readRequest(r.Body, &req); err != nil || len(req.Cmd) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	env := mergeEnv(baseEnv(), req.Env)
	path, err := lookPath(req.Cmd[0], env)
	if err != nil {
		http.Error(w, err.Error(), StatusNotStarted)
		return
	}
	cmd := &exec.Cmd{Path: path, Args: req.Cmd, Env: env, Dir: req.Dir}
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: req.Cols, Rows: req.Rows})
	if err != nil {
		http.Error(w, err.Error(), StatusNotStarted)
		return
	}
	defer tty.Close()
	pid := cmd.Process.Pid
	fw := &frames{w: w, f: w.(http.Flusher)}
	w.WriteHeader(http.StatusOK)
	fw.flush()
	stop := contextAfter(r, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	defer stop()
	go func() {
		buf := make([]byte, MaxFrame)
		for {
			kind, p, err := ReadFrame(r.Body, buf)
			if err != nil {
				return
			}
			switch kind {
			case FrameInput:
				if _, err := tty.Write(p); err != nil {
					return
				}
			case FrameResize:
				_ = pty.Setsize(tty, &pty.Winsize{Cols: binary.BigEndian.Uint16(p), Rows: binary.BigEndian.Uint16(p[2:])})
			}
		}
	}()
	out := make(chan struct{})
	go func() {
		defer close(out)
		buf := make([]byte, MaxFrame)
		for {
			n, err := tty.Read(buf)
			if n > 0 && fw.write(FrameStdout, buf[:n]) != nil {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	code := exitCode(cmd.Wait())
	stop()
	// What the process wrote last is still in the TTY; a child that keeps
	// the TTY open does not hold the answer for long.
	select {
	case <-out:
	case <-time.After(200 * time.Millisecond):
	}
	fw.write(FrameExit, ExitFrame(code))
}
