package node

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestBackTo(t *testing.T) {
	tests := []struct {
		name, back, want string
	}{
		{name: "a page", back: "/spaces/dev", want: "/spaces/dev"},
		{name: "with a query", back: "/audit?space=dev&type=x", want: "/audit?space=dev&type=x"},
		{name: "empty", back: "", want: "/"},
		{name: "relative", back: "spaces/dev", want: "/"},
		{name: "scheme", back: "https://evil.example/", want: "/"},
		{name: "javascript", back: "javascript:alert(1)", want: "/"},
		{name: "protocol-relative", back: "//evil.example", want: "/"},
		{name: "backslash", back: "/\\evil.example", want: "/"},
		{name: "backslash later", back: "/spaces\\..\\x", want: "/"},
		{name: "tab", back: "/\t/evil.example", want: "/"},
		{name: "newline", back: "/\n/evil.example", want: "/"},
		{name: "escaped slash", back: "/%2F/evil.example", want: "/"},
		{name: "unicode control", back: "/\u0085/evil.example", want: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backTo(tt.back, "/")
			if got != tt.want {
				t.Errorf("backTo(%q) = %q, want %q", tt.back, got, tt.want)
			}
			if loc := withDone(got, "paused"); strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\t\n") {
				t.Errorf("Location %q leaves the site", loc)
			}
		})
	}
}

func TestEventRowCutsAtACharacter(t *testing.T) {
	meta := map[string]any{"note": strings.Repeat("é", 300)}
	row := eventRow(spaces.Event{Meta: meta})
	if !utf8.ValidString(row.Meta) || !strings.HasSuffix(row.Meta, "…") {
		t.Errorf("details cut inside a character: %q", row.Meta[len(row.Meta)-8:])
	}
}
