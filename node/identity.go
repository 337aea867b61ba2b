package node

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"tailscale.com/client/tailscale/apitype"
	"tailscale.com/tailcfg"

	"github.com/adam91holt/clawdspace/spaces"
)

// Headers between nodes of a fleet.
const (
	// headerNode names the node a request is for (like ?node=).
	headerNode = "Clawdspace-Node"
	// headerForwardedFor carries the tailnet address of the caller a
	// forwarding node vouches for. The receiving node trusts it only from
	// a peer that holds the "node" action in its own view of the policy,
	// and then looks the address up itself (see docs/POLICY.md).
	headerForwardedFor = "Clawdspace-Forwarded-For"
)

type viaTailnetKey struct{}

// viaTailnet reports whether r came in on the tailnet listener.
func viaTailnet(r *http.Request) bool {
	v, _ := r.Context().Value(viaTailnetKey{}).(bool)
	return v
}

// identifyTailnet resolves the caller of a request that came in on the
// tailnet: an API key when one is sent, else the device's identity with
// its grants, or the caller a trusted node vouches for.
func (s *Server) identifyTailnet(r *http.Request) (spaces.Caller, error) {
	ctx := r.Context()
	// Browsers on the tailnet are known by identity; a key cookie from
	// local mode is ignored here.
	if key := headerOrQueryKey(r); key != "" {
		c, err := s.checkKey(r, key)
		if err != nil {
			return spaces.Caller{}, err
		}
		c.Addr = remoteIP(r.RemoteAddr)
		return c, nil
	}
	peer, err := s.whoIs(ctx, r.RemoteAddr)
	if err != nil {
		s.log.Debug("whois failed", "remote", r.RemoteAddr, "err", err)
		return spaces.Caller{}, s.refuseUnknown(r, "Unauthorized: unknown tailnet peer")
	}
	vouched := r.Header.Get(headerForwardedFor)
	if vouched == "" {
		return peer, nil
	}
	if !peer.Access.Can(spaces.ActNode, "") {
		msg := "Forbidden: " + peer.Label() + " may not forward requests for other callers (it lacks the node role)"
		s.log.Warn("refused a forwarded identity", "peer", peer.Label(), "addr", peer.Addr, "claimed", vouched)
		s.recordRefusal(r, peer, "", msg, true)
		return spaces.Caller{}, spaces.Errorf(spaces.ErrForbidden, "%s", msg)
	}
	c, err := s.whoIs(ctx, vouched)
	if err != nil {
		msg := "Forbidden: the forwarded caller " + vouched + " is not known on this node's tailnet"
		s.recordRefusal(r, peer, "", msg, true)
		return spaces.Caller{}, spaces.Errorf(spaces.ErrForbidden, "%s", msg)
	}
	c.Kind, c.Via = spaces.KindVouched, peer.Device
	return c, nil
}

// refuseUnknown audits and returns a 401 for a request without a caller.
func (s *Server) refuseUnknown(r *http.Request, msg string) error {
	s.log.Debug("auth denied", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
	s.recordDenial(r, msg)
	return spaces.Errorf(spaces.ErrUnauthorized, "%s", msg)
}

// whoIs asks the tailnet who is at addr and what the policy grants them.
// Grants are read on every request, so policy changes apply at once.
func (s *Server) whoIs(ctx context.Context, addr string) (spaces.Caller, error) {
	return WhoIsCaller(ctx, s.cfg.Tailnet, addr, s.cfg.TrustTailnet, s.log)
}

// WhoIsCaller is the caller at a tailnet address (ip:port or ip), with
// its grants (full access with trust): the one lookup behind identity,
// vouching and, given to the fleet, node trust.
func WhoIsCaller(ctx context.Context, w Tailnet, addr string, trust bool, log *slog.Logger) (spaces.Caller, error) {
	who, err := w.WhoIs(ctx, addr)
	if err != nil {
		return spaces.Caller{}, err
	}
	return callerFromWhoIs(who, remoteIP(addr), trust, log), nil
}

// callerFromWhoIs makes the caller a WhoIs answer describes, with the
// grants of the policy (or full access on a trusted tailnet).
func callerFromWhoIs(who *apitype.WhoIsResponse, addr string, trust bool, log *slog.Logger) spaces.Caller {
	c := spaces.Caller{Kind: spaces.KindPerson, Addr: addr}
	if who.Node != nil {
		c.Device = strings.SplitN(strings.TrimSuffix(who.Node.Name, "."), ".", 2)[0]
		if c.Device == "" {
			c.Device = who.Node.ComputedName
		}
		if who.Node.IsTagged() {
			c.Kind, c.Actor = spaces.KindTagged, strings.Join(who.Node.Tags, ",")
		}
	}
	if c.Actor == "" && who.UserProfile != nil {
		c.Actor = who.UserProfile.LoginName
	}
	if c.Actor == "" {
		c.Actor = c.Device
	}
	if trust {
		c.Access = spaces.FullAccess()
		return c
	}
	// Each value is read on its own, so one bad value costs only itself.
	var grants []spaces.Grant
	for _, raw := range who.CapMap[spaces.CapabilityName] {
		one := tailcfg.PeerCapMap{spaces.CapabilityName: {raw}}
		gs, err := tailcfg.UnmarshalCapJSON[spaces.Grant](one, spaces.CapabilityName)
		if err != nil {
			log.Warn("ignoring an unreadable clawdspace grant in the tailnet policy", "actor", c.Actor, "err", err)
			continue
		}
		grants = append(grants, gs...)
	}
	acc, errs := spaces.AccessFrom(grants)
	for _, e := range errs {
		log.Warn("ignoring a clawdspace grant in the tailnet policy", "actor", c.Actor, "err", e)
	}
	c.Access = acc
	return c
}

// remoteIP returns the address part of ip:port (or the input when it has
// no port).
func remoteIP(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
