// Package api holds the request and answer types of the REST contract
// (docs/API.md): the node encodes and decodes only these, and the CLI and
// the fleet's calls to other nodes use the same types. The domain's types
// (package spaces) carry no JSON tags; the conversions between the two
// live here, so a wire name is spelt in exactly one place.
package api

import "time"

// Error is the body of every answer that is not a success.
type Error struct {
	Error string `json:"error"`
}

// Message is the answer of an action that returns no object
// ("Space destroyed", "OK").
type Message struct {
	Message string `json:"message"`
}

// Health is GET /api/health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	// Node is the node's name in the fleet.
	Node string `json:"node"`
}

// Time formats t as the contract's times: ISO 8601 in UTC with
// milliseconds, "" for the zero time.
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
