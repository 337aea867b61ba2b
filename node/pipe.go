package node

import (
	"errors"
	"io"
	"sync"
)

// halfConn is a byte stream that can be half-closed: a TCP connection, a
// TLS connection, the port tunnel, a connection to a space's port.
type halfConn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// pipeBufSize is the copy buffer of each direction of a carried
// connection: large, because this path's throughput is what a user of a
// forwarded port or a tunnel sees.
const pipeBufSize = 256 << 10

var pipeBufs = sync.Pool{New: func() any { b := make([]byte, pipeBufSize); return &b }}

// pipe carries bytes between a and b both ways until both directions have
// ended. The end of one direction (EOF) half-closes the other side's
// write, so a client that sends a request and half-closes still reads the
// whole answer; an error in either direction closes both, which ends the
// other direction too. Both are closed when pipe returns.
func pipe(a, b halfConn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	copyOne := func(dst, src halfConn) {
		defer wg.Done()
		bp := pipeBufs.Get().(*[]byte)
		defer pipeBufs.Put(bp)
		_, err := io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bp)
		if err != nil && !errors.Is(err, io.EOF) {
			closeBoth()
			return
		}
		if dst.CloseWrite() != nil {
			closeBoth()
		}
	}
	go copyOne(b, a)
	go copyOne(a, b)
	wg.Wait()
	closeBoth()
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so io.CopyBuffer
// uses the pooled buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// asHalfConn is c as a halfConn; a connection that cannot half-close
// closes its write side only when it is closed.
func asHalfConn(c io.ReadWriteCloser) halfConn {
	if h, ok := c.(halfConn); ok {
		return h
	}
	return noHalfClose{c}
}

type noHalfClose struct{ io.ReadWriteCloser }

func (noHalfClose) CloseWrite() error { return nil }
