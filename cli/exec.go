package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// spaceFinder finds the node that holds a space.
type spaceFinder interface {
	FindSpace(ctx context.Context, server, name string) (*Client, error)
}

// maxStdin is the most piped stdin exec sends: it travels base64-encoded in
// a JSON body, which a node limits to 8 MiB.
const maxStdin = 6 << 20

// streamOutputLimit is what a streaming exec may print: the node keeps
// nothing of a stream in memory, so the CLI asks for everything.
const streamOutputLimit = 1 << 40

// ExecOptions are the settings of `clawdspace exec`.
type ExecOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name    string
	Command []string
	Server  string
	Timeout time.Duration
	Env     []string
	Cwd     string
	NoStdin bool
	JSON    bool
}

// NewCmdExec builds `clawdspace exec`.
func NewCmdExec(d *Deps, runF func(*ExecOptions) error) *cobra.Command {
	o := &ExecOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:     "exec [flags] NAME COMMAND...",
		Aliases: []string{"x"},
		Short:   "Run a command in a space and exit with its exit code",
		Long: `Run a command in a space. The words of COMMAND are joined with spaces and run by
sh -c in /workspace, as the space's user. Output streams as it comes; the exit code
is the command's (124 when --timeout passes). Piped stdin is passed to the command
(up to 6 MiB); flags go before NAME, everything after NAME belongs to the command.`,
		Example: `  clawdspace exec dev uname -a
  clawdspace exec dev -- ls -la
  clawdspace x dev 'cd src && make test'
  echo hi | clawdspace exec dev cat
  clawdspace exec --timeout 30s --env MODE=ci dev ./run-tests.sh`,
		Args: minArgs("NAME", "COMMAND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name, o.Command = args[0], args[1:]
			// "exec NAME -- CMD ARGS", as docker exec and kubectl exec
			// users type it: the -- ends the flags, it is not the command.
			if o.Command[0] == "--" {
				o.Command = o.Command[1:]
			}
			if len(o.Command) == 0 {
				return usageErrorf("missing COMMAND (usage: %s)", cmd.UseLine())
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces = fl
			if runF != nil {
				return runF(o)
			}
			return execRun(cmd.Context(), o)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.DisableFlagsInUseLine = true
	addServerFlag(cmd, &o.Server)
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 0, "kill the command after this long (e.g. 30s, 5m) and exit 124")
	cmd.Flags().StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable for the command (NAME=VALUE, repeatable)")
	cmd.Flags().StringVar(&o.Cwd, "cwd", "", "working folder, relative to /workspace (default /workspace)")
	cmd.Flags().BoolVarP(&o.NoStdin, "no-stdin", "n", false, "do not pass stdin to the command")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print {stdout, stderr, exitCode} as JSON when the command ends instead of streaming")
	return cmd
}

// execBody is POST /api/spaces/NAME/exec.
type execBody struct {
	Command        string            `json:"command"`
	Env            map[string]string `json:"env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	StdinBase64    *string           `json:"stdinBase64,omitempty"`
	TimeoutMs      int64             `json:"timeoutMs,omitempty"`
	MaxOutputBytes int64             `json:"maxOutputBytes,omitempty"`
	Stream         bool              `json:"stream,omitempty"`
}

// execLine is one line of a streaming exec.
type execLine struct {
	Stream     string  `json:"stream"`
	Data       *string `json:"data"`
	DataBase64 string  `json:"dataBase64"`
	ExitCode   *int    `json:"exitCode"`
	TimedOut   bool    `json:"timedOut"`
	Truncated  bool    `json:"truncated"`
	Error      string  `json:"error"`
}

func execRun(ctx context.Context, o *ExecOptions) error {
	body := execBody{Command: strings.Join(o.Command, " "), Cwd: o.Cwd}
	if strings.TrimSpace(body.Command) == "" {
		return usageErrorf("missing COMMAND (usage: clawdspace exec NAME COMMAND...)")
	}
	if o.Timeout < 0 || (o.Timeout > 0 && o.Timeout < time.Millisecond) {
		return usageErrorf("--timeout must be at least 1ms")
	}
	body.TimeoutMs = o.Timeout.Milliseconds()
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("--env %q must be NAME=VALUE", kv)
		}
		if body.Env == nil {
			body.Env = map[string]string{}
		}
		body.Env[k] = v
	}
	if !o.NoStdin && !o.IO.StdinTTY && o.IO.In != nil {
		b, err := io.ReadAll(io.LimitReader(o.IO.In, maxStdin+1))
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		if len(b) > maxStdin {
			return fmt.Errorf("stdin is larger than %d MiB: copy it in with 'clawdspace files put' instead, or pass --no-stdin", maxStdin>>20)
		}
		enc := base64.StdEncoding.EncodeToString(b)
		body.StdinBase64 = &enc
	}
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	path := spacePath(o.Name, "/exec")
	if o.JSON {
		var out rawObject
		if err := c.Do(ctx, http.MethodPost, path, nil, body, &out); err != nil {
			return spaceError(o.Name, c, err)
		}
		if err := writeJSON(o.IO.Out, out); err != nil {
			return err
		}
		if code, _ := out["exitCode"].(float64); code != 0 {
			return &ExitError{Code: int(code)}
		}
		return nil
	}

	body.Stream, body.MaxOutputBytes = true, streamOutputLimit
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := c.Stream(ctx, http.MethodPost, path, nil, "application/json", bytes.NewReader(b), int64(len(b)), "application/x-ndjson")
	if err != nil {
		return spaceError(o.Name, c, err)
	}
	defer resp.Body.Close()
	return copyExecStream(ctx, resp.Body, o.IO, c.Name, o.Timeout)
}

// copyExecStream writes a streaming exec's output as it comes and returns
// the command's exit status.
func copyExecStream(ctx context.Context, r io.Reader, streams *IO, node string, timeout time.Duration) error {
	dec := json.NewDecoder(r)
	for {
		var l execLine
		if err := dec.Decode(&l); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: the connection ended before the command did", node)
			}
			return fmt.Errorf("%s: reading the command's output: %w", node, err)
		}
		switch {
		case l.Error != "":
			return fmt.Errorf("%s: %s", node, oneLine(l.Error))
		case l.ExitCode != nil:
			if l.Truncated {
				fmt.Fprintln(streams.ErrOut, "clawdspace: output was cut: the node's output limit was reached")
			}
			if *l.ExitCode == 0 {
				return nil
			}
			e := &ExitError{Code: *l.ExitCode}
			if l.TimedOut {
				e.Message = fmt.Sprintf("the command timed out after %s and was killed", timeout)
			}
			return e
		case l.Stream != "":
			data := []byte{}
			if l.Data != nil {
				data = []byte(*l.Data)
			} else if l.DataBase64 != "" {
				d, err := base64.StdEncoding.DecodeString(l.DataBase64)
				if err != nil {
					return fmt.Errorf("%s: bad output chunk: %w", node, err)
				}
				data = d
			}
			w := streams.Out
			if l.Stream == "stderr" {
				w = streams.ErrOut
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
	}
}

// spaceError rewords a node's "Space not found" to name the space and node.
func spaceError(name string, c *Client, err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Message == "Space not found" {
		return fmt.Errorf("space %q not found on %s", name, c.Name)
	}
	return err
}
