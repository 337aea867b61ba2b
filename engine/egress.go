package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/adam91holt/clawdspace/spaces"
)

// Egress block lists are enforced inside each space's own network
// namespace: an nftables table "clawdspace" whose output chain rejects the
// template's CIDRs. The rules live and die with the container's network,
// apply to that space alone, and the space (all capabilities dropped)
// cannot change them. The node needs to run on the engine's host as root.

const egressTable = "clawdspace"

// egressRule is the block list of a space, kept in a label so the rules can
// be put back whenever the container starts, whoever starts it.
func blockLabel(cidrs []string) string { return strings.Join(cidrs, ",") }

func parseBlockLabel(v string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(f)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// EgressSupported reports whether this process can enforce block lists:
// it must be able to enter other network namespaces.
func EgressSupported() error {
	if os.Geteuid() != 0 {
		return errors.New("the node is not running as root")
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTables(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

// applyEgress writes the network rules of a running container from its
// labels: every space with a network is kept from other containers of its
// network, and one with a block list also from the block list and from the
// node's own host addresses (less the ports its template opens).
func (e *Engine) applyEgress(c container.InspectResponse) error {
	if !e.egress || c.Config == nil || c.State == nil || c.State.Pid <= 0 {
		return nil
	}
	if c.HostConfig != nil && c.HostConfig.NetworkMode == "none" {
		return nil
	}
	// IPv6 link-local reaches every container on the bridge whatever the
	// network's subnets, so it is always a peer range.
	r := spaceRules{blocks: parseBlockLabel(c.Config.Labels[spaces.LabelNetworkBlock]),
		peers: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}}
	if len(r.blocks) > 0 {
		r.host = e.hosts.Current()
		r.hostPorts = parsePortsLabel(c.Config.Labels[spaces.LabelHostPorts])
		r.dns = nameservers(c.ResolvConfPath)
	}
	if c.NetworkSettings != nil {
		for _, nw := range c.NetworkSettings.Networks {
			if nw == nil {
				continue
			}
			if nw.IPAddress.IsValid() && nw.IPPrefixLen > 0 {
				r.peers = append(r.peers, netip.PrefixFrom(nw.IPAddress, nw.IPPrefixLen).Masked())
			}
			if nw.GlobalIPv6Address.IsValid() && nw.GlobalIPv6PrefixLen > 0 {
				r.peers = append(r.peers, netip.PrefixFrom(nw.GlobalIPv6Address, nw.GlobalIPv6PrefixLen).Masked())
			}
			for _, g := range []netip.Addr{nw.Gateway, nw.IPv6Gateway} {
				if g.IsValid() {
					r.gateways = append(r.gateways, g)
				}
			}
		}
	}
	// The PID is the engine host's: only enter its namespace when it is
	// this container's process as the node sees it.
	if !inContainer("/proc", c.State.Pid, c.ID) {
		return errors.New("the engine's processes are not visible to the node (is the engine on another host?)")
	}
	// One writer at a time: the start watcher and the host-address watcher
	// may rewrite the same space's table together.
	e.rulesMu.Lock()
	defer e.rulesMu.Unlock()
	return setEgressRules(c.State.Pid, r)
}

// spaceRules is what one space's nftables table enforces.
type spaceRules struct {
	// blocks is the template's block list; host the node's own addresses,
	// blocked with it except for hostPorts; dns the resolvers, allowed on
	// port 53 even inside a blocked range.
	blocks    []netip.Prefix
	host      []netip.Addr
	hostPorts []uint16
	dns       []netip.Addr
	// peers are the space's own networks: new connections from them are
	// refused, except from the gateways (the host, e.g. the node itself).
	peers    []netip.Prefix
	gateways []netip.Addr
}

func portsLabel(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func parsePortsLabel(v string) []uint16 {
	var out []uint16
	for _, f := range strings.Split(v, ",") {
		if p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16); err == nil && p > 0 {
			out = append(out, uint16(p))
		}
	}
	return out
}

// nameservers reads the container's resolv.conf (on the host) so DNS keeps
// working when the resolver sits in a blocked range.
func nameservers(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}

func setEgressRules(pid int, r spaceRules) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return fmt.Errorf("opening the space's network namespace: %w", err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("listing nftables tables: %w", err)
	}
	// Delete and add go in one batch: the space is never without rules.
	for _, t := range tables {
		if t.Name == egressTable {
			c.DelTable(t)
		}
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: egressTable})
	addIsolation(c, t, r)
	// Replies to connections made to the space, and the space talking to
	// itself (the loopback device carries traffic to its own addresses,
	// and the reject notices below), are never blocked.
	ch := addChain(c, t, "egress", nftables.ChainHookOutput, expr.MetaKeyOIFNAME)
	// The resolvers, for DNS only (port 53): they are often the LAN router.
	for _, a := range r.dns {
		addPortAccept(c, t, ch, a, 53)
	}
	// Ports the template opens on the host come before any block: the
	// host's bridge gateway sits in the private ranges.
	for _, a := range r.host {
		for _, p := range r.hostPorts {
			addPortAccept(c, t, ch, a, p)
		}
	}
	blocks := make([]netip.Prefix, 0, len(r.host)+len(r.blocks))
	for _, a := range r.host {
		blocks = append(blocks, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, p := range append(blocks, r.blocks...) {
		addReject(c, t, ch, matchPrefix(p, nil)[:5])
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing egress rules: %w", err)
	}
	return nil
}

// addChain adds a filter chain (policy accept) on hook whose first rules
// accept established and related connections and the loopback device
// (matched by the interface key, in or out, of the hook).
func addChain(c *nftables.Conn, t *nftables.Table, name string, hook *nftables.ChainHook, lo expr.MetaKey) *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: name, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		accept,
	}})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: lo, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
		accept,
	}})
	return ch
}

// addIsolation adds the input chain that keeps other containers of the
// space's networks (other spaces above all) from opening connections to
// it. The host, through the gateway, still may.
func addIsolation(c *nftables.Conn, t *nftables.Table, r spaceRules) {
	ch := addChain(c, t, "isolate", nftables.ChainHookInput, expr.MetaKeyIIFNAME)
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	for _, g := range r.gateways {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: matchSource(netip.PrefixFrom(g, g.BitLen()), accept)})
	}
	for _, p := range r.peers {
		addReject(c, t, ch, matchSource(p, nil)[:5])
	}
}

// addPortAccept accepts TCP and UDP to one address and port.
func addPortAccept(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, a netip.Addr, port uint16) {
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(matchPrefix(netip.PrefixFrom(a, a.BitLen()), nil)[:5],
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
			&expr.Verdict{Kind: expr.VerdictAccept})})
	}
}

// addReject rejects what match selects: TCP with a reset, everything else
// with an ICMP "prohibited", so a blocked connection fails at once instead
// of timing out.
func addReject(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, match []expr.Any) {
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(slices.Clone(match),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(slices.Clone(match),
		&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})})
}

// ifname pads an interface name as the kernel compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// matchPrefix builds "destination in p, then verdict" for the inet family.
func matchPrefix(p netip.Prefix, verdict expr.Any) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(16)
	if p.Addr().Is6() {
		proto, offset = unix.NFPROTO_IPV6, 24
	}
	addr := p.Addr().AsSlice()
	mask := make([]byte, len(addr))
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(len(addr))},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: mask, Xor: make([]byte, len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		verdict,
	}
}

// matchSource is matchPrefix on the source address.
func matchSource(p netip.Prefix, verdict expr.Any) []expr.Any {
	m := matchPrefix(p, verdict)
	pl := m[2].(*expr.Payload)
	pl.Offset -= uint32(len(p.Addr().AsSlice()))
	return m
}

// GuardEgress puts the network rules back on every space of this namespace
// that starts, also when the engine restarts it by itself (restart policy,
// daemon restart), on every running one now, and on every running one when
// the host's addresses change. It returns when ctx ends.
func (e *Engine) GuardEgress(ctx context.Context) {
	if !e.egress {
		return
	}
	filters := e.spaceFilters().Add("type", "container").Add("event", "start")
	// New host addresses go into every space's rules at once.
	e.hosts.Start(ctx)
	defer e.hosts.Close()
	for ctx.Err() == nil {
		e.watchStarts(ctx, filters)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// watchStarts follows start events until the stream breaks or ctx ends.
func (e *Engine) watchStarts(ctx context.Context, filters client.Filters) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := e.c.Events(ctx, client.EventsListOptions{Filters: filters})
	// Subscribe first, then look at what runs, so no start falls between.
	e.reconcileEgress(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-res.Err:
			if ctx.Err() == nil {
				e.log.Warn("engine events ended; reconnecting", "err", err)
			}
			return
		case m := <-res.Messages:
			// A container event's attributes hold its labels.
			if e.owns(m.Actor.Attributes) {
				e.guardOne(ctx, m.Actor.ID)
			}
		}
	}
}

func (e *Engine) reconcileEgress(ctx context.Context) {
	lctx, end := e.short(ctx)
	res, err := e.c.ContainerList(lctx, client.ContainerListOptions{Filters: e.spaceFilters().Add("status", "running")})
	end(&err)
	if err != nil {
		e.log.Warn("listing spaces for egress rules", "err", err)
		return
	}
	for _, c := range res.Items {
		if e.owns(c.Labels) && c.HostConfig.NetworkMode != "none" {
			e.guardOne(ctx, c.ID)
		}
	}
}

func (e *Engine) guardOne(ctx context.Context, id string) {
	ictx, end := e.short(ctx)
	res, err := e.c.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	end(&err)
	if err != nil || !e.isSpace(res.Container.Config) {
		return
	}
	if err := e.enforceOrStop(ctx, res.Container); err != nil {
		e.log.Error("applying egress rules", "container", shortID(id), "err", err)
	}
}

// endedSince reports whether the container c describes no longer runs
// (removed, stopped, or started again with another process).
func (e *Engine) endedSince(ctx context.Context, c container.InspectResponse) bool {
	ictx, end := e.short(ctx)
	now, err := e.c.ContainerInspect(ictx, c.ID, client.ContainerInspectOptions{})
	end(&err)
	if cerrdefs.IsNotFound(err) {
		return true
	}
	if err != nil || c.State == nil {
		return false
	}
	st := now.Container.State
	return st == nil || !st.Running || st.Pid != c.State.Pid
}

// enforceOrStop applies a started space's block list, and stops the space
// when it cannot: a space must not run without the rules its template sets.
func (e *Engine) enforceOrStop(ctx context.Context, c container.InspectResponse) error {
	err := e.applyEgress(c)
	if err == nil {
		return nil
	}
	// A space that stopped (or was removed) while its rules went in is
	// not running unguarded, so that is no error; its next start is
	// guarded again.
	if e.endedSince(ctx, c) {
		e.log.Debug("a space ended while its egress rules went in", "container", shortID(c.ID), "err", err)
		return nil
	}
	timeout := 0
	if _, serr := e.c.ContainerStop(context.WithoutCancel(ctx), c.ID, client.ContainerStopOptions{Timeout: &timeout}); serr != nil {
		e.log.Error("stopping a space whose egress rules failed", "container", shortID(c.ID), "err", serr)
	}
	return fmt.Errorf("enforcing the egress block list (the space was stopped): %w", err)
}
