package spaces

// Caller is who makes a request, resolved once per request.
type Caller struct {
	// Actor is what the audit log records: "api-key", "local" (auth disabled),
	// "auto-sleep", or a tailnet login name.
	Actor string
}

// Well-known actors.
var (
	CallerAPIKey    = Caller{Actor: "api-key"}
	CallerLocal     = Caller{Actor: "local"}
	CallerAutoSleep = Caller{Actor: "auto-sleep"}
)
