package nodetest

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// PTYOutput collects what a program in a pseudo-terminal writes, read from
// the terminal's controlling side in the background.
type PTYOutput struct {
	mu   sync.Mutex
	buf  strings.Builder
	more chan struct{}
}

// ReadPTY starts reading f (the controlling side of a pseudo-terminal)
// until it fails, which it does once the program and f are closed.
func ReadPTY(f *os.File) *PTYOutput {
	p := &PTYOutput{more: make(chan struct{}, 1)}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:n])
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

// String is everything read so far.
func (p *PTYOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// WaitFor waits (a minute at most, then fails t) until the output after
// offset from contains s, and returns the offset just past it.
func (p *PTYOutput) WaitFor(t testing.TB, from int, s string) int {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		out := p.String()
		if i := strings.Index(out[from:], s); i >= 0 {
			return from + i + len(s)
		}
		select {
		case <-p.more:
		case <-deadline:
			t.Fatalf("no %q in the terminal within a minute; it shows:\n%q", s, out)
		}
	}
}
