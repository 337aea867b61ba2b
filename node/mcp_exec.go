package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

const (
	// mcpDefaultOutput bounds an exec's answer when the client asks for
	// no bound: what an agent reads goes into its context.
	mcpDefaultOutput = 1 << 20
	// mcpMaxOutput bounds maxOutputBytes: the answer is held in memory.
	mcpMaxOutput = 64 << 20
	// mcpDefaultRead and mcpMaxRead bound a read_file's length.
	mcpDefaultRead = 256 << 10
	mcpMaxRead     = 8 << 20
)

// ExecIn is a command to run in a space.
type ExecIn struct {
	SpaceArg
	Command        string            `json:"command,omitempty" jsonschema:"a shell command line, run with sh -c (give command or argv)"`
	Argv           []string          `json:"argv,omitempty" jsonschema:"the command as an argument vector, run without a shell (give command or argv)"`
	Cwd            string            `json:"cwd,omitempty" jsonschema:"working folder, inside /workspace (default /workspace)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables"`
	Stdin          *string           `json:"stdin,omitempty" jsonschema:"text to send to the command's standard input"`
	StdinBase64    *string           `json:"stdinBase64,omitempty" jsonschema:"bytes to send to standard input, in base64 (instead of stdin)"`
	TimeoutMs      *int64            `json:"timeoutMs,omitempty" jsonschema:"kill the command and everything it started after this many milliseconds (exit code 124)"`
	MaxOutputBytes *int64            `json:"maxOutputBytes,omitempty" jsonschema:"keep at most this many bytes of output, stdout and stderr together (default 1048576, at most 67108864); truncated says when output was cut"`
}

// ExecOut is how a command ended and what it printed.
type ExecOut struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// StdoutBase64 and StderrBase64 carry the exact bytes when the output
	// is not valid UTF-8.
	StdoutBase64 string `json:"stdoutBase64,omitempty"`
	StderrBase64 string `json:"stderrBase64,omitempty"`
	ExitCode     int    `json:"exitCode"`
	TimedOut     bool   `json:"timedOut"`
	Truncated    bool   `json:"truncated"`
}

// GitPushIn is a push of a repository in a space.
type GitPushIn struct {
	SpaceArg
	RepoPath string `json:"repoPath,omitempty" jsonschema:"the repository's folder inside /workspace (default /workspace)"`
	Remote   string `json:"remote,omitempty" jsonschema:"the remote (default origin)"`
	Branch   string `json:"branch,omitempty" jsonschema:"the branch to push (default the current one)"`
	Token    string `json:"token,omitempty" jsonschema:"a token for the remote's host, used for this push only and never stored"`
}

// GitPushOut is git's output.
type GitPushOut struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exitCode"`
}

func (s *Server) addExecTools(srv *mcp.Server, acts map[string]spaces.Action) {
	addTool(s, srv, acts, spaces.ActExec, &mcp.Tool{Name: "exec",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)},
		Description: "Run a command in a space (woken first if paused) and return its stdout, stderr and exit code. " +
			"Give command (a shell line) or argv. With a progress token the output also streams as progress notifications while it runs; " +
			"cancelling the call kills the command and everything it started."},
		s.mcpExec)
	addTool(s, srv, acts, spaces.ActExec, &mcp.Tool{Name: "git_push",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)},
		Description: "Push a git repository of a space to its remote, optionally with a token for the remote's host that is used for this push only."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in GitPushIn) (GitPushOut, error) {
			res, err := s.cfg.Spaces.Push(ctx, c, in.Name, spaces.PushRequest{RepoPath: in.RepoPath, Remote: in.Remote, Branch: in.Branch, Token: in.Token})
			if err != nil && res.ExitCode != 0 {
				// git ran and failed: its message and its output.
				_, msg := s.classify(err)
				return GitPushOut{}, toolErr{fmt.Sprintf("%s\n%s", msg, res.Stderr)}
			}
			return GitPushOut{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: res.ExitCode}, err
		})
}

// mcpExec runs a command as the REST exec route does, its output kept
// within the node's exec output ceiling and, when the client sent a
// progress token, streamed as progress notifications.
func (s *Server) mcpExec(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in ExecIn) (ExecOut, error) {
	var command any = in.Command
	switch {
	case in.Command != "" && len(in.Argv) > 0:
		return ExecOut{}, spaces.Errorf(spaces.ErrInvalid, "give command or argv, not both")
	case len(in.Argv) > 0:
		command = in.Argv
	}
	raw, err := json.Marshal(command)
	if err != nil {
		return ExecOut{}, fmt.Errorf("encoding the command: %w", err)
	}
	limit := in.MaxOutputBytes
	if limit == nil {
		limit = ptr(int64(mcpDefaultOutput))
	} else if *limit < 0 || *limit > mcpMaxOutput {
		return ExecOut{}, spaces.Errorf(spaces.ErrInvalid, "maxOutputBytes must be between 0 and %d", mcpMaxOutput)
	}
	if in.Command == "" && len(in.Argv) == 0 {
		raw = nil
	}
	x, max, err := execInput(api.ExecRequest{Command: raw, Env: in.Env, Cwd: in.Cwd, Stdin: in.Stdin, StdinBase64: in.StdinBase64,
		TimeoutMs: in.TimeoutMs, MaxOutputBytes: limit}, false)
	if err != nil {
		return ExecOut{}, err
	}
	out, err := newExecOutput(&s.outPool, max)
	if err != nil {
		return ExecOut{}, err
	}
	defer out.release()
	x.Stdout, x.Stderr = &out.stdout, &out.stderr
	if token := req.Params.GetProgressToken(); token != nil {
		p := &progressSink{ctx: ctx, session: req.Session, token: token, limit: outputLimit{left: max}}
		x.Stdout = io.MultiWriter(&out.stdout, p.stream("stdout"))
		x.Stderr = io.MultiWriter(&out.stderr, p.stream("stderr"))
	}
	res, err := s.cfg.Spaces.Exec(ctx, c, in.Name, x)
	if err != nil {
		return ExecOut{}, err
	}
	out.finish()
	if out.starved {
		s.log.Warn("exec output cut: the node holds as much exec output as it may", "space", in.Name, "maxExecOutput", s.outPool.max)
	}
	o := ExecOut{ExitCode: res.ExitCode, TimedOut: res.TimedOut, Truncated: out.truncated}
	o.Stdout, o.StdoutBase64 = out.stdout.texts()
	o.Stderr, o.StderrBase64 = out.stderr.texts()
	return o, nil
}

// texts returns what the stream kept as text and, when it is not valid
// UTF-8, its exact bytes in base64.
func (s *outputStream) texts() (string, string) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	b := bytes.Join(s.chunks, nil)
	if !s.invalid {
		return string(b), ""
	}
	return string(b), base64.StdEncoding.EncodeToString(b)
}

// progressSink sends an exec's output as progress notifications: progress
// counts the bytes so far, the message is the chunk, and _meta names its
// stream. What passes the output cap is not sent.
type progressSink struct {
	mu      sync.Mutex
	ctx     context.Context
	session *mcp.ServerSession
	token   any
	limit   outputLimit
	sent    int64
	failed  bool
}

func (p *progressSink) stream(name string) io.Writer {
	return progressWriter{p, name}
}

type progressWriter struct {
	p    *progressSink
	name string
}

func (w progressWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := p.limit.take(len(b))
	if keep == 0 || p.failed {
		return len(b), nil
	}
	chunk := b[:keep]
	p.sent += int64(keep)
	msg := string(chunk)
	meta := mcp.Meta{"stream": w.name}
	if !utf8.Valid(chunk) {
		msg = fmt.Sprintf("[%d bytes of binary output]", keep)
		meta["dataBase64"] = base64.StdEncoding.EncodeToString(chunk)
	}
	if err := p.session.NotifyProgress(p.ctx, &mcp.ProgressNotificationParams{
		Meta: meta, ProgressToken: p.token, Progress: float64(p.sent), Message: msg,
	}); err != nil {
		// The answer still carries the output; stop sending.
		p.failed = true
	}
	return len(b), nil
}
