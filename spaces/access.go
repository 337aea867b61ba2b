package spaces

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Action is one kind of thing a caller may do. Space actions are checked
// against the space's name; node actions concern the node as a whole.
type Action string

const (
	// ActRead lists and inspects spaces (status, stats, observability) and
	// reads node facts and templates.
	ActRead Action = "read"
	// ActExec runs commands in a space, pauses and starts it, and pushes
	// its repositories.
	ActExec Action = "exec"
	// ActFiles reads and writes a space's files.
	ActFiles Action = "files"
	// ActTerminal opens an interactive shell in a space.
	ActTerminal Action = "terminal"
	// ActPorts connects to a space's TCP ports (forwarded ports, the API
	// tunnel, ssh -L) and opens or closes its forwards.
	ActPorts Action = "ports"
	// ActCheckpoint takes, restores and deletes a space's checkpoints, and
	// forks it (with create on the new space).
	ActCheckpoint Action = "checkpoint"
	// ActCreate makes a space.
	ActCreate Action = "create"
	// ActDestroy removes a space.
	ActDestroy Action = "destroy"
	// ActTemplates adds, changes and deletes templates (a node action).
	ActTemplates Action = "templates"
	// ActAdmin reads the node's whole audit log (a node action).
	ActAdmin Action = "admin"
	// ActNode is held by other Clawdspace nodes: they may vouch for the
	// callers whose requests they forward, and read node facts for fleet
	// health (a node action).
	ActNode Action = "node"
)

// Actions lists every action, in the order the docs use.
func Actions() []Action {
	return []Action{ActRead, ActExec, ActFiles, ActTerminal, ActPorts, ActCheckpoint, ActCreate, ActDestroy, ActTemplates, ActAdmin, ActNode}
}

// spaceScoped reports whether a grant's space patterns limit the action.
func (a Action) spaceScoped() bool {
	switch a {
	case ActTemplates, ActAdmin, ActNode:
		return false
	}
	return true
}

// Roles name sets of actions, each including the one before.
var roleActions = map[string][]Action{
	"viewer":   {ActRead},
	"operator": {ActRead, ActExec, ActFiles, ActTerminal, ActPorts, ActCheckpoint, ActCreate, ActDestroy},
	"admin":    {ActRead, ActExec, ActFiles, ActTerminal, ActPorts, ActCheckpoint, ActCreate, ActDestroy, ActTemplates, ActAdmin},
	"node":     {ActNode},
}

// CapabilityName is the application capability of the tailnet policy file
// whose values are Grants.
const CapabilityName = "github.com/adam91holt/clawdspace/cap/spaces"

// Grant is one value of the capability CapabilityName in the tailnet
// policy file. Its JSON tags are that policy format (read with
// tailcfg.UnmarshalCapJSON), which the domain owns: they are not the REST
// API's wire format, and no answer of the API carries a Grant.
type Grant struct {
	// Role is viewer, operator, admin or node.
	Role string `json:"role,omitempty"`
	// Actions adds single actions to the role's.
	Actions []Action `json:"actions,omitempty"`
	// Spaces limits space actions to names matching one of these patterns
	// (path.Match syntax: "alice-*"); empty means every space.
	Spaces []string `json:"spaces,omitempty"`
}

// UnmarshalJSON refuses unknown fields: a misspelt "spaces" must not
// widen a grant to every space.
func (g *Grant) UnmarshalJSON(b []byte) error {
	type plain Grant
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("grant %s: %w", b, err)
	}
	*g = Grant(p)
	return nil
}

// Validate reports what is wrong with a grant, so a typo in the policy
// file is logged instead of silently granting nothing.
func (g Grant) Validate() error {
	if g.Role == "" && len(g.Actions) == 0 {
		return fmt.Errorf("grant has neither a role nor actions")
	}
	if _, ok := roleActions[g.Role]; g.Role != "" && !ok {
		return fmt.Errorf("unknown role %q (want viewer, operator, admin or node)", g.Role)
	}
	for _, a := range g.Actions {
		if !slices.Contains(Actions(), a) {
			return fmt.Errorf("unknown action %q", a)
		}
	}
	for _, p := range g.Spaces {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("bad space pattern %q", p)
		}
	}
	return nil
}

func (g Grant) allows(a Action, space string) bool {
	if !slices.Contains(roleActions[g.Role], a) && !slices.Contains(g.Actions, a) {
		return false
	}
	if !a.spaceScoped() || len(g.Spaces) == 0 || space == "" {
		// An unscoped check of a space action (space == "") asks whether
		// the caller may do it to some space, for example list spaces.
		return true
	}
	for _, p := range g.Spaces {
		if ok, _ := path.Match(p, space); ok {
			return true
		}
	}
	return false
}

// Access is what a caller may do: the union of its grants. The zero value
// allows nothing.
type Access struct {
	full   bool
	grants []Grant
}

// FullAccess allows everything: the API key, auth disabled, a trusted
// tailnet.
func FullAccess() Access { return Access{full: true} }

// AccessFrom combines grants. Invalid ones are skipped and returned as
// errors for the log.
func AccessFrom(grants []Grant) (Access, []error) {
	var a Access
	var errs []error
	for _, g := range grants {
		if err := g.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		a.grants = append(a.grants, g)
	}
	return a, errs
}

// Can reports whether the action is allowed on the named space ("" for a
// node action, or to ask about any space).
func (a Access) Can(act Action, space string) bool {
	if a.full {
		return true
	}
	for _, g := range a.grants {
		if g.allows(act, space) {
			return true
		}
	}
	return false
}

// String describes the access for logs and the dashboard.
func (a Access) String() string {
	if a.full {
		return "full access"
	}
	if len(a.grants) == 0 {
		return "no access"
	}
	parts := make([]string, 0, len(a.grants))
	for _, g := range a.grants {
		s := g.Role
		if len(g.Actions) > 0 {
			acts := make([]string, len(g.Actions))
			for i, x := range g.Actions {
				acts[i] = string(x)
			}
			s = strings.TrimPrefix(s+"+"+strings.Join(acts, ","), "+")
		}
		if len(g.Spaces) > 0 {
			s += " on " + strings.Join(g.Spaces, ",")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Forbidden is the error for a refused action.
func Forbidden(c Caller, act Action, space string) error {
	if space != "" && act.spaceScoped() {
		return Errorf(ErrForbidden, "Forbidden: %s may not %s space %s", c.Label(), act, space)
	}
	return Errorf(ErrForbidden, "Forbidden: %s may not %s", c.Label(), act)
}
