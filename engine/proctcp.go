package engine

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strconv"

	"github.com/adam91holt/clawdspace/spaces"
)

// The kernel's /proc/net/tcp and /proc/net/tcp6 list a network namespace's
// TCP sockets, one a line:
//
//	sl  local_address rem_address   st tx_queue ...
//	 0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 ...
//
// The address is the in_addr (or in6_addr) printed as 32-bit words in the
// host's byte order, the port as a big-endian number, state 0A is LISTEN.
// Listening sockets come first (the kernel walks its listening hash before
// the established one), so a bounded read of a huge table still finds them.

const (
	// maxProcNetBytes bounds how much of one table is read: a space may
	// open any number of sockets.
	maxProcNetBytes = 4 << 20
	// maxProcNetLine bounds one line; real ones are under 200 bytes.
	maxProcNetLine = 512
	tcpListen      = "0A"
)

// portSet gathers listening sockets and keeps the MaxListeningPorts
// lowest (by port, then address), deduplicated, in bounded memory.
type portSet struct {
	ports []listenAddr
}

type listenAddr struct {
	port uint16
	addr netip.Addr
}

func (s *portSet) add(p listenAddr) {
	s.ports = append(s.ports, p)
	if len(s.ports) >= 4*spaces.MaxListeningPorts {
		s.compact()
	}
}

func (s *portSet) compact() {
	slices.SortFunc(s.ports, func(a, b listenAddr) int {
		return cmp.Or(cmp.Compare(a.port, b.port), a.addr.Compare(b.addr))
	})
	s.ports = slices.Compact(s.ports)
	if len(s.ports) > spaces.MaxListeningPorts {
		s.ports = s.ports[:spaces.MaxListeningPorts]
	}
}

// result returns the set sorted by port.
func (s *portSet) result() []spaces.ListeningPort {
	s.compact()
	out := make([]spaces.ListeningPort, len(s.ports))
	for i, p := range s.ports {
		out[i] = spaces.ListeningPort{Port: p.port, Address: p.addr.String()}
	}
	return out
}

// parseProcNetTCP adds the listening sockets of a /proc/net/tcp or tcp6
// table (or both, one after the other) to s. It reads at most limit bytes
// and skips lines it does not understand, so text from a hostile space
// only makes it find fewer sockets.
func parseProcNetTCP(r io.Reader, limit int64, s *portSet) error {
	br := bufio.NewReaderSize(io.LimitReader(r, limit), maxProcNetLine)
	skipping := false // the rest of an overlong line
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case skipping:
			skipping = false
		default:
			if p, ok := parseProcNetLine(line); ok {
				s.add(p)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseProcNetLine reads one line of the table; ok is false for the header,
// a socket that does not listen, and anything malformed.
func parseProcNetLine(line []byte) (listenAddr, bool) {
	var f [4][]byte
	n := 0
	for i := 0; i < len(line) && n < len(f); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		if i > start {
			f[n] = line[start:i]
			n++
		}
	}
	if n < 4 || string(f[3]) != tcpListen || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return listenAddr{}, false
	}
	local := f[1]
	colon := len(local) - 5
	if colon < 0 || local[colon] != ':' {
		return listenAddr{}, false
	}
	port, err := strconv.ParseUint(string(local[colon+1:]), 16, 16)
	if err != nil || port == 0 {
		return listenAddr{}, false
	}
	addr, ok := parseProcNetAddr(local[:colon])
	if !ok {
		return listenAddr{}, false
	}
	return listenAddr{port: uint16(port), addr: addr}, true
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// parseProcNetAddr reads an address of 8 or 32 hex digits, each group of 8
// a 32-bit word in the host's byte order. An IPv4-mapped IPv6 address is
// given as IPv4: such a socket serves IPv4 only.
func parseProcNetAddr(h []byte) (netip.Addr, bool) {
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for w := 0; w < len(h)/8; w++ {
		v, err := strconv.ParseUint(string(h[w*8:w*8+8]), 16, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		binary.NativeEndian.PutUint32(b[w*4:], uint32(v))
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b).Unmap(), true
}
