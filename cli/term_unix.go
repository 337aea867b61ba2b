//go:build unix

package cli

import (
	"os"
	"os/signal"
	"syscall"
)

func (t *fileTerminal) Resizes() (<-chan struct{}, func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sig:
				select {
				case ch <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return ch, func() { signal.Stop(sig); close(done) }
}
