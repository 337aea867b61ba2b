//go:build !unix

package cli

// Resizes never fires where there is no SIGWINCH.
func (t *fileTerminal) Resizes() (<-chan struct{}, func()) {
	return nil, func() {}
}
