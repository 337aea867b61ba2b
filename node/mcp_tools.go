package node

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

// The MCP tools of spaces, templates, the fleet and the audit log. Each
// calls the Service as the REST handler of the same route does; the
// answers are the REST API's objects.

// SpaceArg names a space, and the node that holds it.
type SpaceArg struct {
	Name string `json:"name" jsonschema:"the space's name"`
	NodeArg
}

// MessageOut is the answer of a tool that only acts.
type MessageOut struct {
	Message string `json:"message"`
}

// ListSpacesIn asks for the spaces of one node or of the fleet.
type ListSpacesIn struct {
	All bool `json:"all,omitempty" jsonschema:"list the spaces of every online node of the fleet, each with its node"`
	NodeArg
}

// ListSpacesOut is the spaces the caller may see; its Errors name the
// nodes that did not answer a fleet-wide list.
type ListSpacesOut = api.FleetSpaceList

// SpaceOut is one space, with the node that holds it.
type SpaceOut struct {
	Space api.Space `json:"space"`
	Node  string    `json:"node"`
}

// CreateSpaceIn is the create request of the REST API.
type CreateSpaceIn struct {
	Name       string            `json:"name" jsonschema:"the new space's name: lowercase letters, digits and dashes"`
	Template   string            `json:"template,omitempty" jsonschema:"a template (see list_templates); default: the node's default"`
	Memory     string            `json:"memory,omitempty" jsonschema:"memory limit such as 512m or 2g; default: the template's"`
	CPUs       *float64          `json:"cpus,omitempty" jsonschema:"CPU limit; default: the template's"`
	GPU        *bool             `json:"gpu,omitempty" jsonschema:"give the space the node's GPUs"`
	Image      string            `json:"image,omitempty" jsonschema:"container image, when the template allows another"`
	Env        map[string]string `json:"env,omitempty" jsonschema:"environment variables of the space"`
	RepoURL    string            `json:"repoUrl,omitempty" jsonschema:"a git repository to clone into the workspace at create"`
	RepoBranch string            `json:"repoBranch,omitempty" jsonschema:"the branch to clone"`
	RepoDest   string            `json:"repoDest,omitempty" jsonschema:"where to clone, inside /workspace"`
	Node       string            `json:"node,omitempty" jsonschema:"the fleet node to make the space on, or auto to let the fleet pick; empty means the node you are connected to"`
}

// DestroySpaceIn names the space to remove.
type DestroySpaceIn struct {
	SpaceArg
	RemoveVolume bool `json:"removeVolume,omitempty" jsonschema:"also delete the workspace volume (its files are lost)"`
}

// TemplateArg names a template.
type TemplateArg struct {
	Name string `json:"name" jsonschema:"the template's name"`
	NodeArg
}

// TemplatesOut lists templates.
type TemplatesOut struct {
	Templates []api.TemplateSummary `json:"templates"`
}

// TemplateOut is one template as YAML.
type TemplateOut struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// NodesIn takes nothing.
type NodesIn struct{}

// NodesOut is the fleet as this node knows it.
type NodesOut struct {
	Nodes         []api.Node `json:"nodes"`
	LastUpdatedAt int64      `json:"lastUpdatedAt" jsonschema:"when the other nodes' health was last refreshed (Unix ms)"`
}

// AuditIn filters the audit log.
type AuditIn struct {
	Space  string `json:"space,omitempty" jsonschema:"only this space's events (needs read on it; the whole log needs admin)"`
	Type   string `json:"type,omitempty" jsonschema:"only events of this type, such as space.create or exec"`
	Actor  string `json:"actor,omitempty" jsonschema:"only events of this actor"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many events, 1 to 1000 (default 200)"`
	Before int64  `json:"before,omitempty" jsonschema:"only events older than this event id, to page back"`
	NodeArg
}

// AuditOut is the newest events, oldest first.
type AuditOut struct {
	Events []api.Event `json:"events"`
}

// ObserveOut is a space's observability.
type ObserveOut struct {
	Observability api.Observability `json:"observability"`
}

func ptr[T any](v T) *T { return &v }

// addMCPTools registers every tool and returns the action each needs to
// be shown.
func (s *Server) addMCPTools(srv *mcp.Server) map[string]spaces.Action {
	acts := map[string]spaces.Action{}
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}

	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "list_spaces", Annotations: ro,
		Description: "List the spaces you may see on a node (or, with all, on every node of the fleet), with their status and resources."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in ListSpacesIn) (ListSpacesOut, error) {
			return s.mcpListSpaces(ctx, c, in.All)
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "get_space", Annotations: ro,
		Description: "Get one space: status (running, paused, stopped), image, template, memory and CPU limits, last activity."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in SpaceArg) (SpaceOut, error) {
			sp, err := s.cfg.Spaces.Get(ctx, c, in.Name)
			return SpaceOut{Space: api.SpaceFrom(sp), Node: s.selfName()}, err
		})
	addTool(s, srv, acts, spaces.ActCreate, &mcp.Tool{Name: "create_space",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		Description: "Create a space: a sandbox container with a persistent /workspace, from a template (see list_templates). " +
			"It is running when this returns; a repository given with repoUrl is cloned into it."},
		s.mcpCreateSpace)
	addTool(s, srv, acts, spaces.ActDestroy, &mcp.Tool{Name: "destroy_space",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: false, OpenWorldHint: ptr(false)},
		Description: "Destroy a space: its container and processes go; its workspace volume stays unless removeVolume is true."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in DestroySpaceIn) (MessageOut, error) {
			return MessageOut{"Space destroyed"}, s.cfg.Spaces.Destroy(ctx, c, in.Name, in.RemoveVolume)
		})
	addTool(s, srv, acts, spaces.ActExec, &mcp.Tool{Name: "pause_space",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "Pause a space: its processes freeze and use no CPU; exec or resume_space wakes it."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in SpaceArg) (MessageOut, error) {
			return MessageOut{"Space paused"}, s.cfg.Spaces.Pause(ctx, c, in.Name)
		})
	addTool(s, srv, acts, spaces.ActExec, &mcp.Tool{Name: "resume_space",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "Resume a paused or stopped space."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in SpaceArg) (MessageOut, error) {
			return MessageOut{"Space started"}, s.cfg.Spaces.Start(ctx, c, in.Name)
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "observe",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
		Description: "Observe a space: CPU, memory, network and disk counters, workspace disk use and size, the top processes and the tail of the shell history. Does not wake a paused space."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in SpaceArg) (ObserveOut, error) {
			o, err := s.cfg.Spaces.Observe(ctx, c, in.Name)
			return ObserveOut{api.ObservabilityFrom(o)}, err
		})
	s.addCheckpointTools(srv, acts)
	s.addExecTools(srv, acts)
	s.addFileTools(srv, acts)

	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "list_templates", Annotations: ro,
		Description: "List the templates a space can be created from, with their descriptions."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in NodeArg) (TemplatesOut, error) {
			list, err := s.cfg.Spaces.Templates(ctx, c)
			out := TemplatesOut{Templates: []api.TemplateSummary{}}
			for _, t := range list {
				out.Templates = append(out.Templates, api.TemplateSummary{Name: t.Name, Description: t.Description})
			}
			return out, err
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "get_template", Annotations: ro,
		Description: "Get a template as YAML: image, limits, network, egress rules, set-up."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in TemplateArg) (TemplateOut, error) {
			t, err := s.cfg.Spaces.Template(ctx, c, in.Name)
			if err != nil {
				return TemplateOut{}, err
			}
			return TemplateOut{Name: t.Name, YAML: t.YAML()}, nil
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "list_nodes", Annotations: ro,
		Description: "List the nodes of the fleet (this one first), with status, capabilities (GPU, CPUs, memory) and space counts; their names go in the node argument of the other tools."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in NodesIn) (NodesOut, error) {
			if err := s.cfg.Spaces.Authorize(ctx, c, "", spaces.ActRead); err != nil {
				return NodesOut{}, err
			}
			nodes, updated, err := s.nodeList(ctx)
			if err != nil {
				return NodesOut{}, err
			}
			out := NodesOut{Nodes: []api.Node{}, LastUpdatedAt: updated.UnixMilli()}
			for _, n := range nodes {
				out.Nodes = append(out.Nodes, api.NodeFrom(n.NodeHealth, n.Self))
			}
			return out, nil
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "audit", Annotations: ro,
		Description: "Read the newest events of the audit log (oldest of them first): who created, ran, changed or was refused what. The events of one space need read on it; the whole log needs the admin role."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in AuditIn) (AuditOut, error) {
			if in.Before < 0 {
				return AuditOut{}, spaces.Errorf(spaces.ErrInvalid, "before must be an event id (a whole number above 0)")
			}
			q := spaces.AuditQuery{Space: in.Space, Type: in.Type, Actor: in.Actor, Limit: in.Limit, Before: in.Before}
			if q.Limit == 0 {
				q.Limit = 200
			}
			events, err := s.cfg.Spaces.Events(ctx, c, q)
			out := AuditOut{Events: []api.Event{}}
			for _, e := range events {
				out.Events = append(out.Events, api.EventFrom(e))
			}
			return out, err
		})
	return acts
}

// mcpListSpaces lists the spaces of this node, or of every online node
// (one hop, as the REST list).
func (s *Server) mcpListSpaces(ctx context.Context, c spaces.Caller, all bool) (ListSpacesOut, error) {
	list, err := s.cfg.Spaces.List(ctx, c)
	if err != nil {
		return ListSpacesOut{Spaces: []api.FleetSpace{}, Errors: []api.NodeError{}}, err
	}
	local := make([]api.Space, 0, len(list))
	for _, sp := range list {
		local = append(local, api.SpaceFrom(sp))
	}
	key := ""
	if r := mcpRequest(ctx); r != nil {
		key = s.requestKey(r)
	}
	return s.fleetSpaces(ctx, c, key, local, all && c.Via == "")
}

// mcpCreateSpace makes a space here, or on the node named (or placed).
func (s *Server) mcpCreateSpace(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in CreateSpaceIn) (SpaceOut, error) {
	if in.Node != "" && !s.isSelf(in.Node) && c.Via == "" {
		target, err := s.createTarget(ctx, c, in.Node, in.GPU, in.Template)
		if err != nil {
			return SpaceOut{}, err
		}
		if target != "" {
			return forwardAs[SpaceOut](ctx, s, req, target)
		}
	}
	sp, err := s.cfg.Spaces.Create(ctx, c, spaces.CreateRequest{
		Name: in.Name, Memory: in.Memory, CPUs: in.CPUs, GPU: in.GPU, Image: in.Image, Template: in.Template, Env: in.Env,
		RepoURL: in.RepoURL, RepoBranch: in.RepoBranch, RepoDest: in.RepoDest,
	})
	if err != nil {
		return SpaceOut{}, err
	}
	return SpaceOut{Space: api.SpaceFrom(sp), Node: s.selfName()}, nil
}

// CheckpointIn names a space and one of its checkpoints.
type CheckpointIn struct {
	SpaceArg
	Checkpoint string `json:"checkpoint,omitempty" jsonschema:"the checkpoint's name: letters, digits, _ and -; empty numbers a new one"`
}

// RestoreIn names the checkpoint to restore.
type RestoreIn struct {
	SpaceArg
	Checkpoint string `json:"checkpoint" jsonschema:"the checkpoint to go back to"`
	Force      bool   `json:"force,omitempty" jsonschema:"restore even when the checkpoint was taken with another image or template"`
}

// ForkIn makes a space from another or from one of its checkpoints.
type ForkIn struct {
	From string `json:"from" jsonschema:"the source: a space NAME (as it is now) or NAME@CHECKPOINT"`
	Name string `json:"name" jsonschema:"the new space's name"`
	NodeArg
}

// addCheckpointTools registers checkpoint, list_checkpoints, restore and
// fork (docs/CHECKPOINTS.md).
func (s *Server) addCheckpointTools(srv *mcp.Server, acts map[string]spaces.Action) {
	addTool(s, srv, acts, spaces.ActCheckpoint, &mcp.Tool{Name: "checkpoint",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		Description: "Take a checkpoint of a space: its /workspace and everything installed or changed outside it, as they are now " +
			"(a running space is frozen for a moment). Take one before something risky; restore goes back to it."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in CheckpointIn) (api.CheckpointAnswer, error) {
			taken, err := s.cfg.Spaces.CreateCheckpoint(ctx, c, in.Name, in.Checkpoint)
			return api.CheckpointAnswerFrom(taken), err
		})
	addTool(s, srv, acts, spaces.ActRead, &mcp.Tool{Name: "list_checkpoints",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "List a space's checkpoints, oldest first, with their sizes and the node's limit per space."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in SpaceArg) (api.CheckpointList, error) {
			list, err := s.cfg.Spaces.Checkpoints(ctx, c, in.Name)
			return api.CheckpointListFrom(list), err
		})
	addTool(s, srv, acts, spaces.ActCheckpoint, &mcp.Tool{Name: "restore",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)},
		Description: "Put a space back to one of its checkpoints: its files and root filesystem as they were (what changed since is lost); " +
			"its processes start afresh. A running space comes back running."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in RestoreIn) (SpaceOut, error) {
			sp, err := s.cfg.Spaces.Restore(ctx, c, in.Name, in.Checkpoint, in.Force)
			return SpaceOut{Space: api.SpaceFrom(sp), Node: s.selfName()}, err
		})
	addTool(s, srv, acts, spaces.ActCreate, &mcp.Tool{Name: "fork",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
		Description: "Make a new space, independent of its source, from a space as it is now (from NAME) or from one of its checkpoints " +
			"(from NAME@CHECKPOINT), with the source's settings. Needs checkpoint on the source too."},
		func(ctx context.Context, c spaces.Caller, req *mcp.CallToolRequest, in ForkIn) (SpaceOut, error) {
			sp, err := s.cfg.Spaces.Fork(ctx, c, in.From, in.Name)
			return SpaceOut{Space: api.SpaceFrom(sp), Node: s.selfName()}, err
		})
}
