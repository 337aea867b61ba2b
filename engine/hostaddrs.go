package engine

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// HostAddrs keeps the current addresses of the node's host (every
// interface, IPv4 and IPv6, public ones and the Docker bridges' gateways
// included) so spaces with a block list can be kept off the host itself.
// Addresses come and go (DHCP, a new Docker network, a VPN), so a loop
// re-reads them every Interval and calls OnChange when the set changed.
type HostAddrs struct {
	interval time.Duration
	onChange func(context.Context)
	log      *slog.Logger
	read     func() ([]netip.Addr, error)

	mu   sync.Mutex
	cur  []netip.Addr
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// DefaultHostAddrInterval is how often the host's addresses are re-read.
const DefaultHostAddrInterval = 3 * time.Second

// NewHostAddrs reads the addresses once; Start begins the watch.
func NewHostAddrs(interval time.Duration, log *slog.Logger, onChange func(context.Context)) *HostAddrs {
	if interval <= 0 {
		interval = DefaultHostAddrInterval
	}
	h := &HostAddrs{interval: interval, onChange: onChange, log: log, read: readHostAddrs}
	h.refresh()
	return h
}

// Current returns the addresses last read, sorted.
func (h *HostAddrs) Current() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// refresh re-reads the addresses and reports whether they changed. A failed
// read keeps the old set: dropping addresses would open the host.
func (h *HostAddrs) refresh() bool {
	addrs, err := h.read()
	if err != nil {
		h.log.Warn("reading the host's addresses", "err", err)
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if slices.Equal(addrs, h.cur) {
		return false
	}
	h.cur = addrs
	return true
}

// Start runs the watch until Close.
func (h *HostAddrs) Start(ctx context.Context) {
	ctx, h.stop = context.WithCancel(ctx)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if h.refresh() && h.onChange != nil {
					h.onChange(ctx)
				}
			}
		}
	}()
}

// Close stops the watch and waits for it.
func (h *HostAddrs) Close() {
	if h.stop != nil {
		h.stop()
	}
	h.wg.Wait()
}

// readHostAddrs lists the unicast addresses of every interface, less
// loopback ones: inside a space those name the space itself.
func readHostAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() {
				continue
			}
			out = append(out, ip.WithZone(""))
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out), nil
}
