package cli

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/adam91holt/clawdspace/nodetest"
)

// runInPTY runs the binary with a pseudo-terminal as its streams and
// returns everything it printed.
func (e *cliEnv) runInPTY(t *testing.T, args ...string) string {
	t.Helper()
	cmd := e.command(t.Context(), args...)
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	out, err := io.ReadAll(ptmx)
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("clawdspace %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestColourOnlyOnATerminal checks that tables are coloured on a terminal,
// not with NO_COLOR, and never when piped.
func TestColourOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := e.space("colour")
	green := colorGreen + "running" + colorReset
	if out := e.runInPTY(t, "list"); !strings.Contains(out, green) || !strings.Contains(out, name) {
		t.Errorf("list on a terminal has no colour:\n%q", out)
	}
	if r := e.ok(nil, "list"); strings.Contains(r.Stdout, "\x1b[") {
		t.Errorf("piped list has escape codes:\n%q", r.Stdout)
	}
	e.env["NO_COLOR"] = "1"
	if out := e.runInPTY(t, "list"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "running") {
		t.Errorf("NO_COLOR list has escape codes:\n%q", out)
	}
}

// TestTokenPromptDoesNotEcho types the GitHub token at the prompt that
// --github-token-stdin shows on a terminal and checks it never appears.
func TestTokenPromptDoesNotEcho(t *testing.T) {
	t.Parallel()
	e := newCLIEnv(t)
	name := nodetest.Name(t, e.node.Engine, "prompt")
	const token = "ghp_typedAtThePrompt42"
	cmd := e.command(t.Context(), "create", name, "-m", "256m", "--github-token-stdin")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	out := nodetest.ReadPTY(ptmx)
	out.WaitFor(t, 0, "GitHub token: ")
	if _, err := ptmx.Write([]byte(token + "\r")); err != nil {
		t.Fatal(err)
	}
	out.WaitFor(t, 0, "Created space "+name)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("create: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), token) {
		t.Errorf("the token was echoed:\n%q", out.String())
	}
	if r := e.ok(nil, "exec", name, `printf %s "$GITHUB_TOKEN"`); r.Stdout != token {
		t.Errorf("GITHUB_TOKEN in the space = %q", r.Stdout)
	}
}
