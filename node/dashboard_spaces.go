package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/views"
)

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request) {
	if !s.pageAuthorize(w, r, "", spaces.ActRead) {
		return
	}
	vm := views.Overview{Chrome: s.chrome(r, "Spaces", views.NavOverview), Live: s.overviewLive(r)}
	s.render(w, r, http.StatusOK, views.OverviewPage(vm))
}

// handleOverviewLive answers the overview's refresh with the live part only.
func (s *Server) handleOverviewLive(w http.ResponseWriter, r *http.Request) {
	if !s.pageAuthorize(w, r, "", spaces.ActRead) {
		return
	}
	s.render(w, r, http.StatusOK, views.OverviewLivePart(s.overviewLive(r)))
}

func (s *Server) overviewLive(r *http.Request) views.OverviewLive {
	c := callerOf(r)
	snap := s.cfg.Machine.Snapshot()
	live := views.OverviewLive{
		Now:       s.clock.Now(),
		CanCreate: c.Can(spaces.ActCreate, ""),
		Stats: views.NodeStats{
			Load: snap.Load, CPUs: snap.CPUs,
			MemTotal: snap.MemTotal, MemUsed: snap.MemTotal - min(snap.MemFree, snap.MemTotal),
		},
	}
	if d := snap.Disk; d != nil {
		live.Stats.HasDisk, live.Stats.DiskUsed, live.Stats.DiskTotal = true, d.Used, d.Used+d.Available
	}
	list, err := s.cfg.Spaces.List(r.Context(), c)
	if err != nil {
		_, msg := s.classify(err)
		s.log.Error("listing spaces for the dashboard", "err", err)
		live.Error = "Could not list the spaces: " + msg
		return live
	}
	for _, sp := range list {
		switch sp.Status {
		case spaces.StatusRunning:
			live.Stats.Running++
		case spaces.StatusPaused:
			live.Stats.Paused++
		default:
			live.Stats.Stopped++
		}
		live.Spaces = append(live.Spaces, spaceRow(sp, c))
	}
	return live
}

// spaceRow is a space as a row of the dashboard, with the buttons c may
// use (the Service decides again when one is pressed).
func spaceRow(sp spaces.Space, c spaces.Caller) views.SpaceRow {
	return views.SpaceRow{
		Name: sp.Name, ID: sp.ID, Status: string(sp.Status), Image: sp.Image,
		Memory: sp.Memory, CPUs: sp.CPUs, GPU: sp.GPU, Template: sp.Template, NetworkMode: sp.NetworkMode,
		Volume: sp.Volume, Agent: sp.Agent, Created: sp.Created, Started: sp.Started, LastActivity: sp.LastActivity,
		CanExec:     c.Can(spaces.ActExec, sp.Name),
		CanTerminal: c.Can(spaces.ActTerminal, sp.Name),
		CanFiles:    c.Can(spaces.ActFiles, sp.Name),
		CanDestroy:  c.Can(spaces.ActDestroy, sp.Name),
	}
}

func (s *Server) createForm(r *http.Request) views.Create {
	vm := views.Create{Chrome: s.chrome(r, "New space", views.NavCreate), HasGPU: s.cfg.Spaces.HasGPU(), Errors: map[string]string{}}
	vm.Templates = []views.Option{{Value: "", Label: "default"}}
	if list, err := s.cfg.Spaces.Templates(r.Context(), callerOf(r)); err == nil {
		vm.Templates = vm.Templates[:0]
		for _, t := range list {
			label := t.Name
			if t.Description != "" {
				label += " – " + t.Description
			}
			vm.Templates = append(vm.Templates, views.Option{Value: t.Name, Label: label})
		}
		vm.Values.Template = spaces.DefaultTemplate
	}
	// Other online nodes, for a space made elsewhere in the fleet.
	if nodes, _, err := s.nodeList(r.Context()); err == nil && len(nodes) > 1 {
		vm.Nodes = []views.Option{{Value: "", Label: "This node (" + s.selfName() + ")"}, {Value: "auto", Label: "Any node that fits"}}
		for _, n := range nodes {
			if !n.Self && n.Status == spaces.NodeOnline {
				vm.Nodes = append(vm.Nodes, views.Option{Value: n.Name, Label: n.Name})
			}
		}
	}
	return vm
}

func (s *Server) handleCreateForm(w http.ResponseWriter, r *http.Request) {
	if !s.pageAuthorize(w, r, "", spaces.ActCreate) {
		return
	}
	s.render(w, r, http.StatusOK, views.CreatePage(s.createForm(r)))
}

// handleCreateSubmit creates a space from the form. The service's rules
// decide, as for POST /api/spaces; a refusal is shown next to its field.
func (s *Server) handleCreateSubmit(w http.ResponseWriter, r *http.Request) {
	if err := s.readForm(w, r); err != nil {
		s.pageError(w, r, err)
		return
	}
	f := r.PostForm
	values := views.CreateValues{
		Node: strings.TrimSpace(f.Get("node")),
		Name: strings.TrimSpace(f.Get("name")), Template: f.Get("template"), Memory: strings.TrimSpace(f.Get("memory")),
		CPUs: strings.TrimSpace(f.Get("cpus")), GPU: f.Get("gpu") == "true", Image: strings.TrimSpace(f.Get("image")),
		RepoURL: strings.TrimSpace(f.Get("repoUrl")), RepoBranch: strings.TrimSpace(f.Get("repoBranch")),
		RepoDest: strings.TrimSpace(f.Get("repoDest")), EnvFileText: f.Get("envFileText"), EnvFilePath: strings.TrimSpace(f.Get("envFilePath")),
	}
	// The form (templates, nodes) is built only when it is shown again.
	form := func() views.Create {
		vm := s.createForm(r)
		vm.Values = values
		return vm
	}
	req := spaces.CreateRequest{
		Name: values.Name, Template: values.Template, Memory: values.Memory, Image: values.Image,
		RepoURL: values.RepoURL, RepoBranch: values.RepoBranch, RepoDest: values.RepoDest,
		EnvFilePath: values.EnvFilePath,
	}
	if values.CPUs != "" {
		c, err := strconv.ParseFloat(values.CPUs, 64)
		if err != nil {
			vm := form()
			vm.Errors["cpus"] = "cpus must be a number"
			s.render(w, r, http.StatusBadRequest, views.CreatePage(vm))
			return
		}
		req.CPUs = &c
	}
	if values.GPU {
		gpu := true
		req.GPU = &gpu
	}
	if strings.TrimSpace(values.EnvFileText) != "" {
		text := strings.ReplaceAll(values.EnvFileText, "\r\n", "\n")
		req.EnvFileText = &text
	}
	name, where, err := s.createOn(r, values.Node, req)
	if err != nil {
		msg, ok := userError(err)
		if !ok {
			s.pageError(w, r, err)
			return
		}
		status, _ := s.classify(err)
		vm := form()
		if field := createField(err); field != "" {
			vm.Errors[field] = msg
		} else {
			vm.FormError = msg
		}
		s.render(w, r, status, views.CreatePage(vm))
		return
	}
	if where == nil {
		http.Redirect(w, r, "/spaces/"+name+"?done=created", http.StatusSeeOther)
		return
	}
	// The form's CSP (form-action 'self') stops a browser from following a
	// redirect to another node, so the answer is a page here that links
	// to the space on its node.
	s.render(w, r, http.StatusCreated, views.CreatedPage(views.Created{
		Chrome: s.chrome(r, "Space created", views.NavCreate), Space: name, Node: where.Name, URL: where.URL,
	}))
}

// createOn makes the space on this node, or on the named node ("auto":
// the one that fits) through the API, as the caller. It returns the
// space's name and the node it is on (nil for this one).
func (s *Server) createOn(r *http.Request, node string, req spaces.CreateRequest) (name string, on *spaces.NodeHealth, err error) {
	node, err = s.createTarget(r.Context(), callerOf(r), node, req.GPU, req.Template)
	if err != nil {
		return "", nil, err
	}
	if node == "" {
		sp, err := s.cfg.Spaces.Create(r.Context(), callerOf(r), req)
		return sp.Name, nil, err
	}
	n, err := s.onlineNode(r.Context(), node)
	if err != nil {
		return "", nil, err
	}
	if err := s.cfg.Fleet.CanVouch(callerOf(r)); err != nil {
		return "", nil, err
	}
	body, err := json.Marshal(api.CreateSpaceFrom(req))
	if err != nil {
		return "", nil, err
	}
	var out api.SpaceAnswer
	if err := s.callNode(r.Context(), n, callerOf(r), s.requestKey(r), http.MethodPost, "/api/spaces", body, &out); err != nil {
		return "", nil, err
	}
	return out.Space.Name, &n, nil
}

// createFields are the form fields of the domain's inputs.
var createFields = map[spaces.Field]string{
	spaces.FieldName: "name", spaces.FieldMemory: "memory", spaces.FieldCPUs: "cpus", spaces.FieldGPU: "gpu",
	spaces.FieldImage: "image", spaces.FieldTemplate: "template",
	spaces.FieldRepoURL: "repo", spaces.FieldBranch: "branch", spaces.FieldRepoDest: "dest",
	spaces.FieldEnvFilePath: "envpath", spaces.FieldEnvFileText: "envfile", spaces.FieldEnvFileBase64: "envfile",
	spaces.FieldEnv: "envfile",
}

// createField names the form field a create error is about, or "".
func createField(err error) string {
	return createFields[spaces.FieldOf(err)]
}

func (s *Server) handleSpacePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sp, err := s.cfg.Spaces.Get(r.Context(), callerOf(r), name)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	q := r.URL.Query()
	vm := views.SpacePage{
		Chrome: s.chrome(r, sp.Name, ""), Space: spaceRow(sp, callerOf(r)), Now: s.clock.Now(),
		Terminal: q.Get("terminal") == "1" && sameSite(r),
	}
	vm.Checkpoints = s.checkpointsPanel(r, name)
	vm.Chrome.Scripts = []string{"vendor/xterm/xterm.js", "vendor/addon-fit/addon-fit.js", "space.js"}
	vm.Chrome.Styles = []string{"vendor/xterm/xterm.css"}
	if vm.Space.CanFiles {
		asked := (q.Get("files") == "1" || q.Get("path") != "") && sameSite(r)
		if sp.Status != spaces.StatusRunning && !asked {
			vm.Files = views.Files{Paused: true, Path: "/"}
		} else {
			vm.Files = s.listFiles(r, name, q.Get("path"))
		}
	}
	vm.Ports = s.portsPanel(r, name)
	events, err := s.cfg.Spaces.Events(r.Context(), callerOf(r), spaces.AuditQuery{Space: name, Limit: 20})
	if err != nil && r.Context().Err() == nil {
		s.log.Error("reading a space's audit trail", "space", name, "err", err)
	}
	vm.Events = eventRows(events)
	s.render(w, r, http.StatusOK, views.SpaceView(vm))
}

// eventRows turns audit events (oldest first) into rows, newest first.
func eventRows(events []spaces.Event) []views.Event {
	out := make([]views.Event, 0, len(events))
	for _, e := range slices.Backward(events) {
		out = append(out, eventRow(e))
	}
	return out
}

func (s *Server) handleObservePart(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	vm := views.Observe{Space: name, Now: s.clock.Now()}
	// Observe reports the status it read: no second lookup of the space.
	o, err := s.cfg.Spaces.Observe(r.Context(), callerOf(r), name)
	vm.Status = string(o.Status)
	if errors.Is(err, spaces.ErrForbidden) {
		s.pageError(w, r, err)
		return
	}
	if err != nil {
		_, msg := s.classify(err)
		vm.Error = "Could not read the space: " + msg
		s.render(w, r, http.StatusOK, views.ObservePart(vm))
		return
	}
	vm.CPUPercent, vm.MemUsed, vm.MemLimit, vm.PIDs = o.Stats.CPUPercent, o.Stats.MemoryUsageBytes, o.Stats.MemoryLimitBytes, o.Stats.PIDs
	if d := o.WorkspaceDisk; d != nil {
		vm.HasDisk, vm.DiskUsed, vm.DiskTotal, vm.DiskPercent = true, d.UsedBytes, d.TotalBytes, d.UsedPercent
	}
	if o.WorkspaceSizeBytes != nil {
		vm.HasSize, vm.WorkspaceBytes = true, *o.WorkspaceSizeBytes
	}
	for _, p := range o.Top {
		vm.Top = append(vm.Top, views.Process{PID: p.PID, CPU: p.CPU, Mem: p.Mem, Etime: p.Etime, Command: p.Command})
	}
	if o.BashHistoryTail != nil {
		vm.HasHistory, vm.History = true, *o.BashHistoryTail
	}
	s.render(w, r, http.StatusOK, views.ObservePart(vm))
}

func (s *Server) handlePausePage(w http.ResponseWriter, r *http.Request) {
	s.lifecyclePage(w, r, "paused", s.cfg.Spaces.Pause)
}

func (s *Server) handleStartPage(w http.ResponseWriter, r *http.Request) {
	s.lifecyclePage(w, r, "started", s.cfg.Spaces.Start)
}

// lifecyclePage pauses or starts a space from a form and goes back to the
// page the form was on.
func (s *Server) lifecyclePage(w http.ResponseWriter, r *http.Request, done string, act func(context.Context, spaces.Caller, string) error) {
	name := r.PathValue("name")
	if err := act(r.Context(), callerOf(r), name); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone(backTo(r.PostFormValue("back"), "/"), done), http.StatusSeeOther)
}

func (s *Server) handleDestroyConfirm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.pageAuthorize(w, r, name, spaces.ActDestroy) {
		return
	}
	sp, err := s.cfg.Spaces.Get(r.Context(), callerOf(r), name)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, views.DestroyConfirm(views.Confirm{
		Chrome: s.chrome(r, "Destroy "+name, ""), Space: sp.Name, Status: string(sp.Status),
	}))
}

func (s *Server) handleDestroyPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	removeVolume := r.PostFormValue("removeVolume") == "true"
	if err := s.cfg.Spaces.Destroy(r.Context(), callerOf(r), name, removeVolume); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/?done=destroyed", http.StatusSeeOther)
}
