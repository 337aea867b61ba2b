package spaces

import "strings"

// Caller is who makes a request, resolved once per request.
type Caller struct {
	// Actor is what the audit log records: "api-key", "local" (auth disabled),
	// "auto-sleep", a tailnet login name, or the tags of a tagged device.
	Actor string
	// Device and Addr name the tailnet device and address the request came
	// from; empty for callers off the tailnet.
	Device string
	Addr   string
	// Via is the node that forwarded the request on the caller's behalf.
	Via string
	// Access is what the caller may do.
	Access Access
}

// Well-known callers. Functions rather than variables, so nothing can
// change what they mean.
func CallerAPIKey() Caller    { return Caller{Actor: "api-key", Access: FullAccess()} }
func CallerLocal() Caller     { return Caller{Actor: "local", Access: FullAccess()} }
func CallerAutoSleep() Caller { return Caller{Actor: "auto-sleep", Access: FullAccess()} }

// auditMeta adds where the caller came from to an audit row's meta.
func (c Caller) auditMeta(meta map[string]any) map[string]any {
	if c.Device == "" && c.Addr == "" && c.Via == "" {
		return meta
	}
	out := make(map[string]any, len(meta)+3)
	for k, v := range meta {
		out[k] = v
	}
	for k, v := range map[string]string{"device": c.Device, "addr": c.Addr, "via": c.Via} {
		if v != "" {
			out[k] = v
		}
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
