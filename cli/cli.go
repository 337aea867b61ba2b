// Package cli is the workstation side of Clawdspace: the commands of the
// clawdspace binary that talk to nodes over the REST API (create, list, exec,
// shell, files, templates, audit...). Each command is built by a NewCmdX
// function from Deps and an optional run function, keeps its settings in an
// options struct, and does its work in an xRun function that tests call
// directly.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// IO holds the streams a command reads and writes.
type IO struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// StdinTTY, StdoutTTY and StderrTTY say which streams are terminals.
	StdinTTY  bool
	StdoutTTY bool
	StderrTTY bool

	// Term is the controlling terminal when stdin is one, else nil.
	Term Terminal
}

// Deps is what every command gets from main.
type Deps struct {
	IO *IO
	// Config loads the configuration; main passes LoadConfig bound to
	// os.Getenv.
	Config func() (*Config, error)
	// HTTP sends every request; nil means a client with sane dial timeouts.
	HTTP *http.Client
	// Now is the clock of the discovery cache.
	Now func() time.Time
	// OpenBrowser opens a URL; it returns ErrNoBrowser where there is none.
	OpenBrowser func(url string) error
	// Version is the build's version.
	Version string
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Exit codes of the clawdspace binary.
const (
	ExitOK        = 0
	ExitFailure   = 1
	ExitUsage     = 2
	ExitInterrupt = 130
)

// UsageError is a mistake in how a command was called: unknown command or
// flag, missing or extra arguments. It exits with code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// ExitError ends the process with Code. Message, when set, is printed; an
// empty one is silent (exec already printed what the command wrote).
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ErrCancelled is returned when the user answers no to a confirmation; it
// exits 0 like the older CLI did.
var ErrCancelled = errors.New("cancelled")

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	var ee *ExitError
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, ErrCancelled):
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupt
	}
	return ExitFailure
}

// ErrorMessage is what main prints for err on stderr: one line, or "" when
// nothing should be printed.
func ErrorMessage(err error) string {
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, ErrCancelled), errors.Is(err, context.Canceled):
		return ""
	case errors.As(err, &ee):
		return ee.Message
	}
	return err.Error()
}

// Register adds every workstation command to root and makes cobra's own
// errors (unknown command or flag, wrong arguments) usage errors.
func Register(root *cobra.Command, d *Deps) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.Args = cobra.ArbitraryArgs
	root.RunE = groupRunE
	root.AddCommand(
		NewCmdCreate(d, nil),
		NewCmdList(d, nil),
		NewCmdExec(d, nil),
		NewCmdStop(d, nil),
		NewCmdStart(d, nil),
		NewCmdDestroy(d, nil),
		NewCmdCheckpoint(d, nil),
		NewCmdRestore(d, nil),
		NewCmdFork(d, nil),
		NewCmdExport(d, nil),
		NewCmdImport(d, nil),
		NewCmdMove(d, nil),
		NewCmdServers(d, nil),
		NewCmdSystem(d, nil),
		NewCmdConfig(d, nil),
		NewCmdDashboard(d, nil),
		NewCmdShell(d, nil),
		NewCmdForward(d, nil),
		NewCmdPorts(d, nil),
		NewCmdFiles(d),
		NewCmdTemplates(d),
		NewCmdAudit(d, nil),
		NewCmdNodes(d, nil),
		NewCmdStats(d, nil),
		NewCmdMCP(d, nil),
		NewCmdSSHProxy(d, nil),
		NewCmdSSHConfig(d, nil),
		NewCmdVersion(d),
	)
}

// groupRunE makes a command that only groups others print its help when
// called alone and refuse an unknown subcommand with a usage error.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q (see '%s --help')", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return cmd.Help()
}

// newGroup returns a command that holds subcommands.
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRunE}
}

// exactArgs requires the named positional arguments, with a usage error
// naming what is missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return rangeArgs(len(names), names...)
}

// rangeArgs requires at least min arguments and at most len(names).
func rangeArgs(min int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min {
			return usageErrorf("missing %s (usage: %s)", names[len(args)], cmd.UseLine())
		}
		if len(args) > len(names) {
			return usageErrorf("too many arguments: %q (usage: %s)", args[len(names)], cmd.UseLine())
		}
		return nil
	}
}

// minArgs requires at least the named arguments and allows more.
func minArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf("missing %s (usage: %s)", names[len(args)], cmd.UseLine())
		}
		return nil
	}
}
