package spaces

// Caller is who makes a request, resolved once per request.
type Caller struct {
	// Actor is what the audit log records: "api-key", "local" (auth disabled),
	// "auto-sleep", or a tailnet login name.
	Actor string
}

// Well-known callers. Functions rather than variables, so nothing can
// change what they mean.
func CallerAPIKey() Caller    { return Caller{Actor: "api-key"} }
func CallerLocal() Caller     { return Caller{Actor: "local"} }
func CallerAutoSleep() Caller { return Caller{Actor: "auto-sleep"} }
