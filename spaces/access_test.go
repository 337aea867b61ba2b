package spaces_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestAccessCan(t *testing.T) {
	grants := func(js ...string) spaces.Access {
		t.Helper()
		var gs []spaces.Grant
		for _, j := range js {
			var g spaces.Grant
			if err := json.Unmarshal([]byte(j), &g); err != nil {
				t.Fatal(err)
			}
			gs = append(gs, g)
		}
		a, errs := spaces.AccessFrom(gs)
		if len(errs) > 0 {
			t.Fatalf("grants %v: %v", js, errs)
		}
		return a
	}
	tests := []struct {
		name   string
		access spaces.Access
		act    spaces.Action
		space  string
		want   bool
	}{
		{"no grant reads nothing", spaces.Access{}, spaces.ActRead, "a", false},
		{"no grant lists nothing", spaces.Access{}, spaces.ActRead, "", false},
		{"full access", spaces.FullAccess(), spaces.ActTemplates, "", true},
		{"viewer reads", grants(`{"role":"viewer"}`), spaces.ActRead, "a", true},
		{"viewer cannot exec", grants(`{"role":"viewer"}`), spaces.ActExec, "a", false},
		{"viewer cannot read files", grants(`{"role":"viewer"}`), spaces.ActFiles, "a", false},
		{"operator execs", grants(`{"role":"operator"}`), spaces.ActExec, "a", true},
		{"operator opens terminals", grants(`{"role":"operator"}`), spaces.ActTerminal, "a", true},
		{"operator cannot edit templates", grants(`{"role":"operator"}`), spaces.ActTemplates, "", false},
		{"operator cannot read the whole audit", grants(`{"role":"operator"}`), spaces.ActAdmin, "", false},
		{"admin edits templates", grants(`{"role":"admin"}`), spaces.ActTemplates, "", true},
		{"admin is not a node", grants(`{"role":"admin"}`), spaces.ActNode, "", false},
		{"node vouches", grants(`{"role":"node"}`), spaces.ActNode, "", true},
		{"node cannot exec", grants(`{"role":"node"}`), spaces.ActExec, "a", false},
		{"pattern matches", grants(`{"role":"operator","spaces":["alice-*"]}`), spaces.ActExec, "alice-1", true},
		{"pattern does not match", grants(`{"role":"operator","spaces":["alice-*"]}`), spaces.ActExec, "bob-1", false},
		{"pattern allows listing some", grants(`{"role":"viewer","spaces":["alice-*"]}`), spaces.ActRead, "", true},
		{"patterns do not limit node actions", grants(`{"role":"admin","spaces":["x"]}`), spaces.ActTemplates, "", true},
		{"extra action", grants(`{"role":"viewer","actions":["files"]}`), spaces.ActFiles, "a", true},
		{"actions without a role", grants(`{"actions":["exec"],"spaces":["ci-*"]}`), spaces.ActExec, "ci-7", true},
		{"grants combine", grants(`{"role":"viewer"}`, `{"role":"operator","spaces":["mine"]}`), spaces.ActExec, "mine", true},
		{"combined grants keep their scopes", grants(`{"role":"viewer"}`, `{"role":"operator","spaces":["mine"]}`), spaces.ActExec, "yours", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.access.Can(tt.act, tt.space); got != tt.want {
				t.Errorf("Can(%s, %q) = %v, want %v (%s)", tt.act, tt.space, got, tt.want, tt.access)
			}
		})
	}
}

func TestAccessFromSkipsBadGrants(t *testing.T) {
	tests := []struct {
		name  string
		grant spaces.Grant
		want  string
	}{
		{"empty", spaces.Grant{}, "neither a role nor actions"},
		{"unknown role", spaces.Grant{Role: "owner"}, `unknown role "owner"`},
		{"unknown action", spaces.Grant{Actions: []spaces.Action{"delete"}}, `unknown action "delete"`},
		{"bad pattern", spaces.Grant{Role: "viewer", Spaces: []string{"[a"}}, "bad space pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, errs := spaces.AccessFrom([]spaces.Grant{tt.grant, {Role: "viewer", Spaces: []string{"ok"}}})
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("errors %v, want one saying %q", errs, tt.want)
			}
			if !a.Can(spaces.ActRead, "ok") || a.Can(spaces.ActRead, "other") {
				t.Fatalf("the good grant must still apply, alone: %s", a)
			}
		})
	}
}

func TestGrantJSONIsStrict(t *testing.T) {
	var g spaces.Grant
	err := json.Unmarshal([]byte(`{"role":"operator","space":["alice-*"]}`), &g)
	if err == nil || !strings.Contains(err.Error(), `unknown field "space"`) {
		t.Fatalf("a misspelt field gave %v, want an error naming it", err)
	}
	if err := json.Unmarshal([]byte(`{"role":"operator","spaces":["alice-*"]}`), &g); err != nil || len(g.Spaces) != 1 {
		t.Fatalf("a good grant: %+v, %v", g, err)
	}
}
