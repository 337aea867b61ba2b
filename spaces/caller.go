package spaces

import "strings"

// CallerKind says how a caller was identified. Decisions that depend on
// it (may the caller's request travel to another node, does a dashboard
// session stand for the API key) switch on the kind, never on the Actor
// string.
type CallerKind int

const (
	// KindNone is the zero value: nobody was identified; it may do
	// nothing.
	KindNone CallerKind = iota
	// KindAPIKey presented the node's API key (header, ?key= or a
	// dashboard session signed in with it).
	KindAPIKey
	// KindLocal is any caller of a node whose authentication is disabled.
	KindLocal
	// KindPerson is a tailnet user, known by WhoIs.
	KindPerson
	// KindTagged is a tagged tailnet device (a server, CI, another node).
	KindTagged
	// KindVouched is a person or device that another node of the fleet
	// forwarded a request for; Via names that node.
	KindVouched
	// KindSystem is the node's own background work (auto-sleep,
	// recovery, history ingest, audit retention).
	KindSystem
)

// String names the kind for logs and audit rows.
func (k CallerKind) String() string {
	switch k {
	case KindAPIKey:
		return "api-key"
	case KindLocal:
		return "local"
	case KindPerson:
		return "person"
	case KindTagged:
		return "tagged"
	case KindVouched:
		return "vouched"
	case KindSystem:
		return "system"
	}
	return "none"
}

// Door is the way a request came into the node; audit rows name it.
type Door string

const (
	// DoorAPI is the REST API (the CLI, scripts, the plugin).
	DoorAPI Door = "api"
	// DoorDashboard is the dashboard's pages.
	DoorDashboard Door = "dashboard"
	// DoorMCP is the Model Context Protocol endpoint.
	DoorMCP Door = "mcp"
	// DoorSSH is the node's SSH server.
	DoorSSH Door = "ssh"
	// DoorPorts is a forwarded port on the node's tailnet address.
	DoorPorts Door = "ports"
)

// Caller is who makes a request, resolved once per request by the door it
// came through, and passed to every Service method, which decides.
type Caller struct {
	// Kind says how the caller was identified.
	Kind CallerKind
	// Actor is what the audit log records: "api-key", "local" (auth disabled),
	// "auto-sleep", a tailnet login name, or the tags of a tagged device.
	Actor string
	// Device and Addr name the tailnet device and address the request came
	// from; empty for callers off the tailnet.
	Device string
	Addr   string
	// Via is the node that forwarded the request on the caller's behalf.
	Via string
	// Door is the way in (empty for the node's own work).
	Door Door
	// Access is what the caller may do.
	Access Access
}

// Well-known callers. Functions rather than variables, so nothing can
// change what they mean.
func CallerAPIKey() Caller { return Caller{Kind: KindAPIKey, Actor: "api-key", Access: FullAccess()} }
func CallerLocal() Caller  { return Caller{Kind: KindLocal, Actor: "local", Access: FullAccess()} }
func CallerAutoSleep() Caller {
	return Caller{Kind: KindSystem, Actor: "auto-sleep", Access: FullAccess()}
}

// Through returns c as having come in through door d.
func (c Caller) Through(d Door) Caller {
	c.Door = d
	return c
}

// Can reports whether c may do act to space ("" for a node action, or to
// ask about any space). Doors use it only to decide what to show (a
// button, a tool); the Service decides what is done.
func (c Caller) Can(act Action, space string) bool {
	return c.Kind != KindNone && c.Access.Can(act, space)
}

// auditMeta adds where the caller came from to an audit row's meta.
func (c Caller) auditMeta(meta map[string]any) map[string]any {
	if c.Device == "" && c.Addr == "" && c.Via == "" && (c.Door == "" || c.Door == DoorAPI) {
		return meta
	}
	out := make(map[string]any, len(meta)+4)
	for k, v := range meta {
		out[k] = v
	}
	for k, v := range map[string]string{"device": c.Device, "addr": c.Addr, "via": c.Via} {
		if v != "" {
			out[k] = v
		}
	}
	if c.Door != "" && c.Door != DoorAPI {
		out["door"] = string(c.Door)
	}
	return out
}

// Label is a short human name of the caller: the actor, and the device
// when there is one.
func (c Caller) Label() string {
	if c.Device == "" || strings.EqualFold(c.Device, c.Actor) {
		return c.Actor
	}
	return c.Actor + " (" + c.Device + ")"
}
