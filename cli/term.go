package cli

import (
	"os"

	"golang.org/x/term"
)

// Terminal is the user's terminal, for `shell` and for reading secrets.
type Terminal interface {
	// MakeRaw puts the terminal in raw mode; restore puts it back.
	MakeRaw() (restore func() error, err error)
	// Size is the window size.
	Size() (cols, rows int, err error)
	// Resizes sends a value each time the window size changes, until stop.
	Resizes() (ch <-chan struct{}, stop func())
	// ReadPassword turns echo off, then shows the prompt (so nothing typed
	// after the prompt appears can echo), and reads a line.
	ReadPassword(prompt func()) ([]byte, error)
}

// SystemIO returns the process's streams, with what is a terminal.
func SystemIO() *IO {
	io := &IO{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		StdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		StdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		StderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	if io.StdinTTY {
		io.Term = &fileTerminal{in: os.Stdin, out: os.Stdout}
	}
	return io
}

// fileTerminal is a terminal on file descriptors.
type fileTerminal struct {
	in, out *os.File
}

func (t *fileTerminal) MakeRaw() (func() error, error) {
	st, err := term.MakeRaw(int(t.in.Fd()))
	if err != nil {
		return nil, err
	}
	return func() error { return term.Restore(int(t.in.Fd()), st) }, nil
}

func (t *fileTerminal) Size() (int, int, error) {
	if term.IsTerminal(int(t.out.Fd())) {
		return term.GetSize(int(t.out.Fd()))
	}
	return term.GetSize(int(t.in.Fd()))
}
