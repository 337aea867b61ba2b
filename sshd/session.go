package sshd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/adam91holt/clawdspace/spaces"
)

// Bounds of what one session may send before it runs something.
const (
	maxEnv        = 64
	maxEnvValue   = 4096
	maxCommandLen = 64 << 10
	waitTimeout   = 5 * time.Second
)

// sftpScript runs the image's sftp-server, wherever the distribution put
// it, or says that there is none.
const sftpScript = `for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server; do
  [ -x "$p" ] && exec "$p"
done
echo "clawdspace: this space's image has no sftp-server (install openssh-sftp-server in it); scp -O works without it" >&2
exit 127`

// connection is an authenticated SSH connection to one space.
type connection struct {
	srv    *Server
	sc     *ssh.ServerConn
	caller spaces.Caller
	space  string
	sem    chan struct{}
	wg     sync.WaitGroup
}

// serve handles the connection's channels until it ends, then waits for
// them: closing the connection ends each (killing what it started).
func (c *connection) serve(ctx context.Context, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	// Global requests: tcpip-forward (ssh -R) and the rest are refused.
	go ssh.DiscardRequests(reqs)
	defer c.wg.Wait()
	for nc := range chans {
		select {
		case c.sem <- struct{}{}:
		default:
			_ = nc.Reject(ssh.ResourceShortage, fmt.Sprintf("too many channels: at most %d on one connection", cap(c.sem)))
			continue
		}
		release := func() { <-c.sem }
		switch nc.ChannelType() {
		case "session":
			c.wg.Go(func() { defer release(); c.session(ctx, nc) })
		case "direct-tcpip":
			c.wg.Go(func() { defer release(); c.directTCPIP(ctx, nc) })
		default:
			release()
			_ = nc.Reject(ssh.UnknownChannelType, fmt.Sprintf("clawdspace does not serve %q channels (only sessions and ssh -L)", nc.ChannelType()))
		}
	}
}

// ptyRequest is what pty-req asked for.
type ptyRequest struct {
	term       string
	cols, rows int
}

var termName = regexp.MustCompile(`^[A-Za-z0-9_.+-]*$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// session serves one session channel: requests (pty-req, env,
// window-change) until shell, exec or subsystem, then runs that.
func (c *connection) session(ctx context.Context, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var pty *ptyRequest
	env := map[string]string{}
	resize := make(chan [2]int, 1)
	started := false
	done := make(chan struct{})
	defer func() {
		// The client closed the channel or the connection ended: cancel
		// kills what the session started; wait until it has ended (and
		// its audit rows are written).
		cancel()
		if started {
			<-done
		}
	}()
	for req := range reqs {
		if started {
			// After the start only resizes and signals matter.
			switch req.Type {
			case "window-change":
				if cols, rows, ok := parseWindow(req.Payload); ok {
					select {
					case <-resize:
					default:
					}
					resize <- [2]int{cols, rows}
				}
			}
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
			continue
		}
		switch req.Type {
		case "pty-req":
			p, ok := parsePty(req.Payload)
			if ok {
				pty = &p
			}
			_ = req.Reply(ok, nil)
		case "env":
			var kv struct{ Name, Value string }
			ok := ssh.Unmarshal(req.Payload, &kv) == nil && envName.MatchString(kv.Name) && len(kv.Value) <= maxEnvValue && len(env) < maxEnv
			if ok {
				env[kv.Name] = kv.Value
			}
			_ = req.Reply(ok, nil)
		case "window-change":
			if cols, rows, ok := parseWindow(req.Payload); ok && pty != nil {
				pty.cols, pty.rows = cols, rows
			}
		case "shell", "exec", "subsystem":
			var command string
			if req.Type != "shell" {
				var p struct{ Value string }
				if ssh.Unmarshal(req.Payload, &p) != nil || len(p.Value) > maxCommandLen {
					_ = req.Reply(false, nil)
					continue
				}
				command = p.Value
			}
			if req.Type == "subsystem" && command != "sftp" {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			started = true
			kind, p := req.Type, pty
			go func() {
				defer close(done)
				c.run(ctx, ch, kind, command, p, env, resize)
				// The process ended: closing the channel ends the
				// request loop.
				ch.Close()
			}()
		default:
			// auth-agent-req@openssh.com, x11-req, signal, and
			// anything else: refused.
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// run starts what a session asked for and copies its streams until it
// ends, then sends its exit status.
func (c *connection) run(ctx context.Context, ch ssh.Channel, kind, command string, pty *ptyRequest, env map[string]string, resize <-chan [2]int) {
	svc := c.srv.cfg.Service
	if pty != nil && kind != "subsystem" {
		c.runTerminal(ctx, ch, command, pty, resize)
		return
	}
	cmd := spaces.ShellCommand(command)
	switch {
	case kind == "subsystem":
		cmd = []string{"sh", "-c", sftpScript}
	case kind == "shell":
		cmd = []string{"sh", "-c", `command -v bash >/dev/null 2>&1 && exec bash -l; exec sh -l`}
	}
	req := spaces.ExecRequest{Cmd: cmd, Env: runEnv(env), Input: ch, Stdout: ch, Stderr: ch.Stderr()}
	res, err := svc.Run(ctx, c.caller, c.space, req)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.fail(ch, err)
		return
	}
	_ = ch.CloseWrite()
	sendExit(ch, res.ExitCode)
}

// runEnv keeps the variables the service accepts; a refused one would
// refuse the whole command.
func runEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		if spaces.ValidateEnv(map[string]string{k: v}) == nil {
			out[k] = v
		}
	}
	return out
}

// runTerminal runs a login shell (or command) with a TTY.
func (c *connection) runTerminal(ctx context.Context, ch ssh.Channel, command string, pty *ptyRequest, resize <-chan [2]int) {
	term, err := c.srv.cfg.Service.OpenTerminalFor(ctx, c.caller, c.space, spaces.TerminalRequest{
		Command: command, Term: pty.term, Cols: pty.cols, Rows: pty.rows,
	})
	if err != nil {
		c.fail(ch, err)
		return
	}
	defer term.Close()
	// The client gone (the channel or connection closed): kill the shell.
	stop := context.AfterFunc(ctx, func() { term.Close() })
	defer stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sz := <-resize:
				_ = term.Resize(ctx, sz[0], sz[1])
			}
		}
	}()
	go func() {
		// Keystrokes. EOF on a TTY's input means nothing to the shell
		// (Ctrl-D is a byte): copying stops there.
		_, _ = io.Copy(term, ch)
	}()
	_, _ = io.Copy(ch, term)
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	code, err := term.Wait(wctx)
	cancel()
	if err != nil {
		return
	}
	_ = ch.CloseWrite()
	sendExit(ch, code)
}

// fail tells the client why its session could not run, on stderr with
// exit status 1 (127 for a missing space's shell would mislead).
func (c *connection) fail(ch ssh.Channel, err error) {
	msg := refusalMessage(c.space, err)
	if !errors.Is(err, spaces.ErrForbidden) && !errors.Is(err, spaces.ErrNotFound) {
		c.srv.log.Debug("ssh session failed", "space", c.space, "err", err)
	}
	fmt.Fprintf(ch.Stderr(), "%s\r\n", msg)
	sendExit(ch, 1)
}

// sendExit sends the exit-status request (RFC 4254 6.10).
func sendExit(ch ssh.Channel, code int) {
	_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
}

// parsePty reads a pty-req payload; sizes are clamped to what a terminal
// may have, and 0 means the default.
func parsePty(b []byte) (ptyRequest, bool) {
	var p struct {
		Term             string
		Cols, Rows, W, H uint32
		Modes            string
	}
	if ssh.Unmarshal(b, &p) != nil {
		return ptyRequest{}, false
	}
	if len(p.Term) > spaces.MaxTermLength || !termName.MatchString(p.Term) {
		p.Term = ""
	}
	return ptyRequest{term: p.Term, cols: clampSize(p.Cols), rows: clampSize(p.Rows)}, true
}

func parseWindow(b []byte) (cols, rows int, ok bool) {
	var p struct{ Cols, Rows, W, H uint32 }
	if ssh.Unmarshal(b, &p) != nil || p.Cols == 0 || p.Rows == 0 {
		return 0, 0, false
	}
	return clampSize(p.Cols), clampSize(p.Rows), true
}

func clampSize(n uint32) int {
	return int(min(n, spaces.MaxTerminalSize))
}
