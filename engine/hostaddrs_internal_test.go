package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestHostAddrsWatch: a change of the host's addresses is noticed by the
// loop and reported once; a failed read keeps the old set (dropping it
// would unblock the host); Close stops the loop.
func TestHostAddrsWatch(t *testing.T) {
	var mu sync.Mutex
	set := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	var fail bool
	changed := make(chan []netip.Addr, 10)
	h := &HostAddrs{interval: 10 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
	h.read = func() ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("netlink gone")
		}
		return slices.Clone(set), nil
	}
	h.onChange = func(context.Context) { changed <- h.Current() }
	h.refresh()
	h.Start(t.Context())
	defer h.Close()

	mu.Lock()
	fail = true
	mu.Unlock()
	select {
	case got := <-changed:
		t.Fatalf("a failed read reported a change to %v", got)
	case <-time.After(100 * time.Millisecond):
	}
	if got := h.Current(); len(got) != 1 {
		t.Fatalf("after a failed read Current() = %v, want the old set", got)
	}

	mu.Lock()
	fail = false
	set = append(set, netip.MustParseAddr("198.51.100.7"))
	mu.Unlock()
	select {
	case got := <-changed:
		if len(got) != 2 {
			t.Fatalf("change reported with %v, want both addresses", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the new address was never reported")
	}
	h.Close()
	h.Close() // twice is fine
}

// TestReadHostAddrs: the real read has no loopback addresses.
func TestReadHostAddrs(t *testing.T) {
	addrs, err := readHostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IsLoopback() || a.Zone() != "" {
			t.Errorf("host address %v: loopback or zoned", a)
		}
	}
}
