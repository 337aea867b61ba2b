package api

import "github.com/adam91holt/clawdspace/spaces"

// Event is one audit event of GET /api/audit.
type Event struct {
	ID    int64          `json:"id"`
	TS    string         `json:"ts"`
	Space string         `json:"space,omitempty"`
	Type  string         `json:"type"`
	Actor string         `json:"actor,omitempty"`
	Meta  map[string]any `json:"meta,omitempty"`
	// Source is "node" (done or seen by the node) or "space" (reported by
	// the space itself: its shell history).
	Source string `json:"source"`
}

// EventFrom is e as the contract shows it.
func EventFrom(e spaces.Event) Event {
	src := e.Source
	if src == "" {
		src = spaces.SourceNode
	}
	return Event{ID: e.ID, TS: Time(e.Time), Space: e.Space, Type: e.Type, Actor: e.Actor, Meta: e.Meta, Source: src}
}

// EventList is GET /api/audit, oldest first.
type EventList struct {
	Events []Event `json:"events"`
}
