//go:build !unix

package cli

import "golang.org/x/term"

// Resizes never fires where there is no SIGWINCH.
func (t *fileTerminal) Resizes() (<-chan struct{}, func()) {
	return nil, func() {}
}

func (t *fileTerminal) ReadPassword(prompt func()) ([]byte, error) {
	prompt()
	return term.ReadPassword(int(t.in.Fd()))
}
