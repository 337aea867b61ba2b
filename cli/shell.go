package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// ShellOptions are the settings of `clawdspace shell`.
type ShellOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name   string
	Server string
}

// NewCmdShell builds `clawdspace shell`.
func NewCmdShell(d *Deps, runF func(*ShellOptions) error) *cobra.Command {
	o := &ShellOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "shell NAME",
		Short: "Open an interactive shell in a space",
		Long: `Open an interactive login shell in a space over the node's terminal WebSocket.
The local terminal is put in raw mode (every key, Ctrl-C included, goes to the space)
and restored when the shell ends; window size changes follow. Exit the shell (exit or
Ctrl-D) to return. With stdin not a terminal, its lines are typed into the shell and
Ctrl-D is sent at its end.`,
		Example: "  clawdspace shell dev",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces = fl
			if runF != nil {
				return runF(o)
			}
			return shellRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	return cmd
}

// terminalURL is the WebSocket address of a space's terminal.
func terminalURL(base, name string) string {
	u := strings.TrimRight(base, "/") + "/api" + spacePath(name, "/terminal")
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

func shellRun(ctx context.Context, o *ShellOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	h := http.Header{}
	if c.Key != "" {
		h.Set("Authorization", "Bearer "+c.Key)
	}
	if c.Via != "" {
		h.Set(headerNode, c.Via)
	}
	tty := o.IO.StdinTTY && o.IO.Term != nil
	u := terminalURL(c.BaseURL, o.Name)
	if tty {
		if cols, rows, err := o.IO.Term.Size(); err == nil && cols > 0 && rows > 0 {
			u += fmt.Sprintf("?cols=%d&rows=%d", min(cols, 1000), min(rows, 1000))
		}
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c.HTTP, HTTPHeader: h,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			apiErr := c.readError(resp)
			if IsNotFound(apiErr) && strings.Contains(apiErr.Error(), "Not found:") {
				return fmt.Errorf("%s does not serve terminals yet (GET /api/spaces/NAME/terminal answered 404)", c.Name)
			}
			return spaceError(o.Name, c, apiErr)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{URL: c.BaseURL, Err: err}
	}
	defer conn.CloseNow()
	conn.SetReadLimit(-1)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if tty {
		restore, err := o.IO.Term.MakeRaw()
		if err != nil {
			return fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer restore()
		sendSize := func() {
			if cols, rows, err := o.IO.Term.Size(); err == nil && cols > 0 && rows > 0 {
				b, _ := json.Marshal(api.TerminalResize(min(cols, 1000), min(rows, 1000)))
				_ = conn.Write(ctx, websocket.MessageText, b)
			}
		}
		sendSize()
		resized, stop := o.IO.Term.Resizes()
		defer stop()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-resized:
					sendSize()
				}
			}
		}()
	}

	if o.IO.In != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := o.IO.In.Read(buf)
				if n > 0 {
					if werr := conn.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if !tty {
						// Like a user pressing Ctrl-D at the prompt.
						_ = conn.Write(ctx, websocket.MessageBinary, []byte{4})
					}
					return
				}
			}
		}()
	}

	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return shellEnd(ctx, c, err)
		}
		// Text messages are control answers ({"type":"pong"}), never output.
		if typ != websocket.MessageBinary {
			continue
		}
		if _, err := o.IO.Out.Write(data); err != nil {
			return err
		}
	}
}

// shellEnd turns the end of a terminal connection into the command's
// result: the shell's exit code when the node closed normally.
func shellEnd(ctx context.Context, c *Client, err error) error {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.StatusNormalClosure:
		var code int
		if _, perr := fmt.Sscanf(ce.Reason, "Shell exited with code %d", &code); perr == nil && code != 0 {
			return &ExitError{Code: code}
		}
		return nil
	case errors.As(err, &ce):
		reason := ce.Reason
		if reason == "" {
			reason = ce.Code.String()
		}
		return fmt.Errorf("%s: the terminal ended: %s", c.Name, reason)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF):
		return nil
	}
	return fmt.Errorf("%s: terminal connection lost: %w", c.Name, err)
}
