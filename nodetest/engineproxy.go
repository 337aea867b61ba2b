package nodetest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// EngineProxy is a unix socket in front of the real Docker engine, for
// tests of an engine that stops answering or goes away, without touching
// the engine other tests use. It forwards every connection until Freeze
// (connections are accepted and never answered) or Stop (nothing listens).
type EngineProxy struct {
	// Host is the proxy's address, for Options.DockerHost.
	Host string

	path, target string
	ln           net.Listener
	mu           sync.Mutex
	frozen       bool
	conns        map[net.Conn]struct{}
	wg           sync.WaitGroup
	stopped      chan struct{}
	stopOnce     sync.Once
}

// StartEngineProxy starts a proxy to the engine of DOCKER_HOST (a unix
// socket) or /var/run/docker.sock, closed when the test ends.
func StartEngineProxy(tb testing.TB) *EngineProxy {
	tb.Helper()
	target := "/var/run/docker.sock"
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		target = h
	}
	// A short folder: socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "cs-engine")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatalf("listening on %s: %v", path, err)
	}
	p := &EngineProxy{Host: "unix://" + path, path: path, target: target, ln: ln, conns: map[net.Conn]struct{}{}, stopped: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(func() {
		p.Stop()
		os.RemoveAll(dir)
	})
	return p
}

func (p *EngineProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		frozen := p.frozen
		p.mu.Unlock()
		if frozen {
			continue // held open, never answered
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *EngineProxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("unix", p.target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	p.drop(c)
	p.drop(up)
	<-done
}

// pipe copies src to dst until either fails; once frozen it swallows what
// it reads, so requests on open connections are never answered either.
func (p *EngineProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.isFrozen() {
				<-p.stopped
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *EngineProxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

func (p *EngineProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Freeze makes the engine stop answering, as a SIGSTOPped engine does:
// connections, open and new, stay open and nothing more is answered.
func (p *EngineProxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Stop makes the engine unreachable: the socket is gone and every
// connection closed.
func (p *EngineProxy) Stop() {
	p.stopOnce.Do(func() { close(p.stopped) })
	p.ln.Close()
	os.Remove(p.path)
	p.mu.Lock()
	p.frozen = true
	open := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		p.drop(c)
	}
	p.wg.Wait()
}
