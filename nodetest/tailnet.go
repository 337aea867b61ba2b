package nodetest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// Control is an in-process tailnet: a control server with DERP and STUN
// on loopback, which devices join with its auth key.
type Control struct {
	Server  *testcontrol.Server
	URL     string
	AuthKey string

	mu     sync.Mutex
	grants map[string][]spaces.Grant // caller address -> grants
}

// StartControl starts a test tailnet that lives until the test ends. It
// accepts only its own auth key, on every login.
func StartControl(tb testing.TB) *Control {
	tb.Helper()
	return startControl(tb, true, magicDNSDomain)
}

// StartControlAnyKey starts a test tailnet that accepts any auth key and
// lets devices log in again with their saved state and no key, as a real
// control server does (StartControl's asks for the key every time).
func StartControlAnyKey(tb testing.TB) *Control {
	tb.Helper()
	return startControl(tb, false, magicDNSDomain)
}

// StartControlNoCertificates starts a test tailnet without MagicDNS, so
// it offers its devices no TLS certificates (no certificate domains), as
// a tailnet with HTTPS turned off does.
func StartControlNoCertificates(tb testing.TB) *Control {
	tb.Helper()
	return startControl(tb, true, "")
}

// magicDNSDomain is the test tailnet's MagicDNS domain.
const magicDNSDomain = "tail-scale.ts.net"

func startControl(tb testing.TB, requireKey bool, dnsDomain string) *Control {
	tb.Helper()
	netns.SetEnabled(false)
	tb.Cleanup(func() { netns.SetEnabled(true) })
	derpMap := integration.RunDERPAndSTUN(tb, logger.Discard, "127.0.0.1")
	c := &Control{AuthKey: "tskey-test-clawdspace", grants: map[string][]spaces.Grant{}}
	c.Server = &testcontrol.Server{
		DERPMap:        derpMap,
		DNSConfig:      &tailcfg.DNSConfig{Proxied: true},
		MagicDNSDomain: dnsDomain,
		Logf:           logger.Discard,
		// As Tailscale's control server does, say which peers are online.
		AllOnline: true,
	}
	if requireKey {
		c.Server.RequireAuthKey = c.AuthKey
	}
	c.Server.HTTPTestServer = httptest.NewUnstartedServer(c.Server)
	c.Server.HTTPTestServer.Start()
	tb.Cleanup(c.Server.HTTPTestServer.Close)
	c.URL = c.Server.HTTPTestServer.URL
	return c
}

// Join brings a device called hostname onto the tailnet (a node, or a
// person's laptop) and waits until it talks to DERP.
func (c *Control) Join(tb testing.TB, hostname string) *tailnet.Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := c.deviceConfig(tb)
	cfg.Hostname = hostname
	n, err := tailnet.Start(ctx, cfg)
	if err != nil {
		tb.Fatalf("joining the test tailnet as %s: %v", hostname, err)
	}
	tb.Cleanup(func() { n.Close() })
	waitForHomeDERP(tb, ctx, n)
	return n
}

// deviceConfig is the config of a device joining this tailnet, less its
// hostname.
func (c *Control) deviceConfig(tb testing.TB) tailnet.Config {
	tb.Helper()
	return tailnet.Config{
		Dir: tb.TempDir(), AuthKey: c.AuthKey, ControlURL: c.URL,
		Ephemeral: true, Store: new(mem.Store), StartTimeout: time.Minute,
	}
}

// waitForHomeDERP waits until the device has a home DERP region it hears
// from; without it about one first request in eight stalls for seconds.
func waitForHomeDERP(tb testing.TB, ctx context.Context, n *tailnet.Node) {
	tb.Helper()
	sys := n.Server().Sys()
	h, ms := sys.HealthTracker.Get(), sys.MagicSock.Get()
	for {
		if r := ms.GetLastNetcheckReport(ctx); r != nil && r.PreferredDERP != 0 &&
			!h.GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("device never reached its home DERP: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitForPeers waits until every device sees every other one.
func WaitForPeers(tb testing.TB, devs ...*tailnet.Node) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, d := range devs {
		for {
			st, err := d.Status(ctx)
			if err == nil && len(st.Peer) >= len(devs)-1 {
				break
			}
			select {
			case <-ctx.Done():
				tb.Fatalf("devices never saw each other: %v", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// Grant sets the grants a caller's address holds on every serving device
// (replacing earlier ones), as a policy file with per-identity grants
// would. The serving devices then stop getting automatic updates from
// control, so call it once every device has joined.
func (c *Control) Grant(tb testing.TB, caller *tailnet.Node, serving []*tailnet.Node, grants ...spaces.Grant) {
	tb.Helper()
	c.mu.Lock()
	c.grants[caller.Addr()] = grants
	var rules []tailcfg.FilterRule
	for addr, gs := range c.grants {
		if len(gs) == 0 {
			continue
		}
		vals := make([]tailcfg.RawMessage, 0, len(gs))
		for _, g := range gs {
			b, err := json.Marshal(g)
			if err != nil {
				c.mu.Unlock()
				tb.Fatal(err)
			}
			vals = append(vals, tailcfg.RawMessage(b))
		}
		rules = append(rules, tailcfg.FilterRule{
			SrcIPs: []string{addr},
			CapGrant: []tailcfg.CapGrant{{
				Dsts:   []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
				CapMap: tailcfg.PeerCapMap{spaces.CapabilityName: vals},
			}},
		})
	}
	c.mu.Unlock()
	for _, s := range serving {
		st, err := s.Status(context.Background())
		if err != nil || st.Self == nil {
			tb.Fatalf("reading device status: %v", err)
		}
		var nk key.NodePublic = st.Self.PublicKey
		if !c.Server.AddRawMapResponse(nk, &tailcfg.MapResponse{
			PacketFilters: map[string][]tailcfg.FilterRule{"app-grants": rules},
		}) {
			tb.Fatalf("device %s is not connected to control", st.Self.HostName)
		}
	}
	// The filters arrive asynchronously: wait until every serving device
	// sees the caller's new grants.
	for _, s := range serving {
		WaitUntil(tb, "grants to reach "+s.DNSName(), func() bool {
			who, err := s.WhoIs(context.Background(), caller.Addr())
			return err == nil && len(who.CapMap[spaces.CapabilityName]) == len(grants)
		})
	}
}

// WaitUntil polls cond every 20 ms until it holds or a minute passes.
func WaitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
