package engine

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

// procAddr prints an address as the kernel does in /proc/net/tcp{,6}:
// 32-bit words in the host's byte order.
func procAddr(a netip.Addr) string {
	b := a.AsSlice()
	var s strings.Builder
	for w := 0; w < len(b)/4; w++ {
		fmt.Fprintf(&s, "%08X", binary.NativeEndian.Uint32(b[w*4:]))
	}
	return s.String()
}

func procLine(sl int, a netip.Addr, port uint16, state string) string {
	zero := strings.Repeat("0", len(procAddr(a)))
	return fmt.Sprintf("%4d: %s:%04X %s:0000 %s 00000000:00000000 00:00000000 00000000  1001        0 %d 1 0000000000000000 100 0 0 10 0\n",
		sl, procAddr(a), port, zero, state, 1000+sl)
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
const tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func lp(port uint16, addr string) spaces.ListeningPort {
	return spaces.ListeningPort{Port: port, Address: addr}
}

func parseString(t *testing.T, in string) []spaces.ListeningPort {
	t.Helper()
	var s portSet
	if err := parseProcNetTCP(strings.NewReader(in), maxProcNetBytes, &s); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s.result()
}

func TestParseProcNetTCP(t *testing.T) {
	a := netip.MustParseAddr
	v4 := tcpHeader +
		procLine(0, a("127.0.0.1"), 8080, "0A") +
		procLine(1, a("0.0.0.0"), 22, "0A") +
		procLine(2, a("10.1.2.3"), 5432, "0A") +
		procLine(3, a("127.0.0.1"), 8080, "01") + // established: not a listener
		procLine(4, a("127.0.0.1"), 9999, "06") // time wait
	v6 := tcp6Header +
		procLine(0, a("::"), 22, "0A") +
		procLine(1, a("::1"), 3000, "0A") +
		procLine(2, a("fd00::1234:5678"), 443, "0A") +
		procLine(3, a("::ffff:127.0.0.1"), 7000, "0A") + // v4-mapped: IPv4 only
		procLine(4, a("::1"), 3000, "0A") // the same socket twice (SO_REUSEPORT): once
	got := parseString(t, v4+v6)
	want := []spaces.ListeningPort{
		lp(22, "0.0.0.0"), lp(22, "::"), lp(443, "fd00::1234:5678"), lp(3000, "::1"),
		lp(5432, "10.1.2.3"), lp(7000, "127.0.0.1"), lp(8080, "127.0.0.1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("parsed\n%v\nwant\n%v", got, want)
	}
	for _, p := range got {
		if lo := p.Loopback(); lo != (p.Address == "127.0.0.1" || p.Address == "::1") {
			t.Errorf("%v: Loopback() = %v", p, lo)
		}
	}
}

// TestParseProcNetTCPHostile: garbage, huge lines and odd fields are
// skipped; what is valid around them is still found; the byte bound holds.
func TestParseProcNetTCPHostile(t *testing.T) {
	a := netip.MustParseAddr
	good := procLine(0, a("127.0.0.1"), 8080, "0A")
	cases := []struct {
		name string
		in   string
		want []spaces.ListeningPort
	}{
		{"empty", "", nil},
		{"header only", tcpHeader, nil},
		{"garbage", "\x00\xff\n:::\n0A 0A 0A 0A\n  0: zz:zz 0:0 0A\n", nil},
		{"no newline at the end", strings.TrimSuffix(good, "\n"), []spaces.ListeningPort{lp(8080, "127.0.0.1")}},
		{"huge line then a good one", strings.Repeat("A", 1<<20) + "\n" + good, []spaces.ListeningPort{lp(8080, "127.0.0.1")}},
		{"huge good-looking line", "   0: 0100007F:1F90 00000000:0000 0A " + strings.Repeat("0", 4096) + "\n" + procLine(1, a("::1"), 81, "0A"),
			[]spaces.ListeningPort{lp(81, "::1")}},
		{"port 0", procLine(0, a("0.0.0.0"), 0, "0A"), nil},
		{"port too wide", "   0: 0100007F:11F90 00000000:0000 0A\n", nil},
		{"signed port", "   0: 0100007F:+F90 00000000:0000 0A\n", nil},
		{"address of 7 digits", "   0: 100007F:1F90 00000000:0000 0A\n", nil},
		{"address of 16 digits", "   0: 0100007F0100007F:1F90 00000000:0000 0A\n", nil},
		{"no sl colon", "   0 0100007F:1F90 00000000:0000 0A\n", nil},
		{"state lower case", "   0: 0100007F:1F90 00000000:0000 0a\n", nil},
		{"too few fields", "   0: 0100007F:1F90\n", nil},
		{"tabs", "\t0:\t0100007F:1F90\t00000000:0000\t0A\n", []spaces.ListeningPort{lp(8080, "127.0.0.1")}},
		{"CRLF", "   0: 0100007F:1F90 00000000:0000 0A\r\n", []spaces.ListeningPort{lp(8080, "127.0.0.1")}},
		{"0x prefix", "   0: 0x00007F:1F90 00000000:0000 0A\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := parseString(t, c.in)
			if len(got) == 0 && len(c.want) == 0 {
				return
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}

	// Past the byte bound nothing more is read.
	var s portSet
	in := strings.Repeat("x", maxProcNetBytes) + "\n" + good
	if err := parseProcNetTCP(strings.NewReader(in), maxProcNetBytes, &s); err != nil {
		t.Fatal(err)
	}
	if got := s.result(); len(got) != 0 {
		t.Errorf("read past the bound: %v", got)
	}
}

// TestParseProcNetTCPMany: thousands of listeners give the
// MaxListeningPorts lowest, sorted, deduplicated, in bounded memory.
func TestParseProcNetTCPMany(t *testing.T) {
	var in strings.Builder
	in.WriteString(tcpHeader)
	const n = 5000
	for i := range n {
		// Highest ports first, each twice, and on two addresses.
		port := uint16(60000 - i)
		in.WriteString(procLine(i, netip.MustParseAddr("0.0.0.0"), port, "0A"))
		in.WriteString(procLine(i, netip.MustParseAddr("0.0.0.0"), port, "0A"))
		in.WriteString(procLine(i, netip.MustParseAddr("::"), port, "0A"))
	}
	var s portSet
	if err := parseProcNetTCP(strings.NewReader(in.String()), maxProcNetBytes, &s); err != nil {
		t.Fatal(err)
	}
	if cap(s.ports) > 8*spaces.MaxListeningPorts {
		t.Errorf("the set grew to %d entries", cap(s.ports))
	}
	got := s.result()
	if len(got) != spaces.MaxListeningPorts {
		t.Fatalf("%d ports, want %d", len(got), spaces.MaxListeningPorts)
	}
	low := uint16(60000 - n + 1)
	for i, p := range got {
		want := spaces.ListeningPort{Port: low + uint16(i/2), Address: "0.0.0.0"}
		if i%2 == 1 {
			want.Address = "::"
		}
		if p != want {
			t.Fatalf("port %d = %v, want %v", i, p, want)
		}
	}
}

// TestParseProcNetTCPOwn parses this process's own table, with a listener
// of its own on the IPv4 and the IPv6 loopback.
func TestParseProcNetTCPOwn(t *testing.T) {
	got := map[spaces.ListeningPort]bool{}
	want := map[spaces.ListeningPort]bool{}
	for _, addr := range []string{"127.0.0.1", "::1"} {
		l, err := listenTCP(t, addr)
		if err != nil {
			t.Logf("no listener on %s: %v", addr, err)
			continue
		}
		want[spaces.ListeningPort{Port: l, Address: addr}] = true
	}
	for _, file := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var s portSet
		err = parseProcNetTCP(f, maxProcNetBytes, &s)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.result() {
			got[p] = true
		}
	}
	if len(want) == 0 {
		t.Fatal("could listen on no loopback")
	}
	for p := range want {
		if !got[p] {
			t.Errorf("the table lacks %v (found %v)", p, got)
		}
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(tcpHeader + procLine(0, netip.MustParseAddr("127.0.0.1"), 8080, "0A"))
	f.Add(tcp6Header + procLine(0, netip.MustParseAddr("::1"), 3000, "0A"))
	f.Add("   0: 0100007F:1F90 00000000:0000 0A\n\x00")
	f.Fuzz(func(t *testing.T, in string) {
		var s portSet
		if err := parseProcNetTCP(strings.NewReader(in), maxProcNetBytes, &s); err != nil {
			t.Fatal(err)
		}
		got := s.result()
		if len(got) > spaces.MaxListeningPorts {
			t.Fatalf("%d ports", len(got))
		}
		for i, p := range got {
			if p.Port == 0 {
				t.Fatalf("port 0 in %v", got)
			}
			if _, err := netip.ParseAddr(p.Address); err != nil {
				t.Fatalf("address %q: %v", p.Address, err)
			}
			if i > 0 && got[i-1].Port > p.Port {
				t.Fatalf("not sorted: %v", got)
			}
		}
	})
}

// listenTCP listens on addr until the test ends and returns the port.
func listenTCP(t *testing.T, addr string) (uint16, error) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	t.Cleanup(func() { l.Close() })
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}
