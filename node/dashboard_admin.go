package node

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/views"
)

func (s *Server) handleTemplatesPage(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Spaces.Templates(r.Context(), callerOf(r))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	vm := views.TemplatesPage{Chrome: s.chrome(r, "Templates", views.NavTemplates), CanEdit: callerOf(r).Can(spaces.ActTemplates, "")}
	for _, t := range list {
		vm.Templates = append(vm.Templates, views.TemplateRow{Name: t.Name, Description: t.Description, Managed: t.Managed})
	}
	s.render(w, r, http.StatusOK, views.TemplatesList(vm))
}

const newTemplateYAML = `name: my-template
description: What spaces from this template are for
resources:
  memory: 2g
  cpus: 1
network:
  mode: internet
`

func (s *Server) handleTemplateNew(w http.ResponseWriter, r *http.Request) {
	if !s.pageAuthorize(w, r, "", spaces.ActTemplates) {
		return
	}
	s.render(w, r, http.StatusOK, views.TemplateEdit(views.TemplatePage{
		Chrome: s.chrome(r, "New template", views.NavTemplates), YAML: newTemplateYAML, CanEdit: true,
	}))
}

func (s *Server) handleTemplatePage(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Spaces.Template(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, views.TemplateEdit(views.TemplatePage{
		Chrome: s.chrome(r, "Template "+t.Name, views.NavTemplates), Name: t.Name, YAML: t.YAML(),
		Managed: t.Managed, CanEdit: callerOf(r).Can(spaces.ActTemplates, ""),
	}))
}

// handleTemplateSave stores the YAML of the form; the service's validation
// message is shown above the editor, with the text kept.
func (s *Server) handleTemplateSave(w http.ResponseWriter, r *http.Request) {
	if err := s.readForm(w, r); err != nil {
		s.pageError(w, r, err)
		return
	}
	src := strings.ReplaceAll(r.PostForm.Get("yaml"), "\r\n", "\n")
	t, err := s.cfg.Spaces.PutTemplate(r.Context(), callerOf(r), src)
	if err != nil {
		msg, ok := userError(err)
		if !ok {
			s.pageError(w, r, err)
			return
		}
		// The page stays the one the form was on: the template being
		// edited (with its name, Managed and Delete) or a new one.
		vm := views.TemplatePage{Chrome: s.chrome(r, "New template", views.NavTemplates), YAML: src, Error: msg, CanEdit: true}
		if editing := r.PostForm.Get("editing"); editing != "" {
			if t, terr := s.cfg.Spaces.Template(r.Context(), callerOf(r), editing); terr == nil {
				vm.Chrome.Title, vm.Name, vm.Managed = "Template "+t.Name, t.Name, t.Managed
			}
		}
		status, _ := s.classify(err)
		s.render(w, r, status, views.TemplateEdit(vm))
		return
	}
	http.Redirect(w, r, "/templates/"+t.Name+"?done=saved", http.StatusSeeOther)
}

func (s *Server) handleTemplateDeletePage(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.DeleteTemplate(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/templates?done=deleted", http.StatusSeeOther)
}

// auditPageSize is how many events one audit page shows.
const auditPageSize = 50

// auditTypes are the event types the audit page offers as a filter.
func auditTypes() []string {
	return []string{
		spaces.EventCreate, spaces.EventStart, spaces.EventPause, spaces.EventDestroy, spaces.EventExec,
		spaces.EventShell, spaces.EventShellSkipped, spaces.EventFileWrite, spaces.EventFileMkdir, spaces.EventFileDelete,
		spaces.EventGitPush, spaces.EventTerminalOpen, spaces.EventTerminalClose,
		spaces.EventTemplateUpsert, spaces.EventTemplateDelete, spaces.EventDenied,
	}
}

// handleAuditPage lists audit events newest first, filtered by space, type
// and actor in the store, a page at a time (older pages by event ID).
func (s *Server) handleAuditPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	space, typ, actor := strings.TrimSpace(q.Get("space")), q.Get("type"), strings.TrimSpace(q.Get("actor"))
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	before = max(before, 0)
	vm := views.AuditPage{
		Chrome: s.chrome(r, "Audit", views.NavAudit), Space: space, Type: typ, Actor: actor,
		Types: auditTypes(), Now: s.clock.Now(), Filtered: space != "" || typ != "" || actor != "",
	}
	// One more than a page says whether there is an older page.
	events, err := s.cfg.Spaces.Events(r.Context(), callerOf(r), spaces.AuditQuery{
		Space: space, Type: typ, Actor: actor, Before: before, Limit: auditPageSize + 1,
	})
	if errors.Is(err, spaces.ErrForbidden) {
		s.pageError(w, r, err)
		return
	}
	if err != nil {
		_, msg := s.classify(err)
		vm.Error = "Could not read the audit log: " + msg
		s.render(w, r, http.StatusOK, views.AuditView(vm))
		return
	}
	older := len(events) > auditPageSize
	if older {
		events = events[1:]
	}
	vm.Events = eventRows(events)
	link := func(before int64) string {
		v := url.Values{}
		for k, val := range map[string]string{"space": space, "type": typ, "actor": actor} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if before > 0 {
			v.Set("before", strconv.FormatInt(before, 10))
		}
		return "/audit?" + v.Encode()
	}
	if before > 0 {
		vm.PrevURL = link(0)
	}
	if older {
		vm.NextURL = link(events[0].ID)
	}
	s.render(w, r, http.StatusOK, views.AuditView(vm))
}

func eventRow(e spaces.Event) views.Event {
	meta := ""
	if len(e.Meta) > 0 {
		if b, err := json.Marshal(e.Meta); err == nil {
			meta = string(b)
		}
		if len(meta) > 400 {
			// Cut at a character boundary, not inside one.
			cut := 400
			for cut > 0 && !utf8.RuneStart(meta[cut]) {
				cut--
			}
			meta = meta[:cut] + "…"
		}
	}
	actor := e.Actor
	if e.Source == spaces.SourceSpace {
		// Written by code in the space: its claim, not the node's record.
		actor += " (reported by the space)"
	}
	return views.Event{ID: e.ID, Time: e.Time, Space: e.Space, Type: e.Type, Actor: actor, Meta: meta}
}

func (s *Server) handleFleetPage(w http.ResponseWriter, r *http.Request) {
	if !s.pageAuthorize(w, r, "", spaces.ActRead) {
		return
	}
	list, updated, err := s.nodeList(r.Context())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	c := callerOf(r)
	vm := views.FleetPage{
		Chrome: s.chrome(r, "Fleet", views.NavFleet), UpdatedAt: updated, Now: s.clock.Now(),
		CanExec: c.Can(spaces.ActExec, ""), CanDestroy: c.Can(spaces.ActDestroy, ""),
	}
	vm.Chrome.Scripts = []string{"fleet.js"}
	for _, n := range list {
		row := views.NodeRow{
			Name: n.Name, URL: n.URL, Online: n.Status == spaces.NodeOnline, LatencyMs: n.LatencyMs, Self: n.Self,
			LastSeen: n.LastSeen, Version: n.Version, Problem: n.Problem,
		}
		if c := n.Capabilities; c != nil {
			row.GPU, row.Arch, row.CPUs, row.Memory, row.MemFree = c.GPU, c.Arch, c.CPUs, c.Memory, c.MemoryFree
		}
		vm.Nodes = append(vm.Nodes, row)
	}
	s.render(w, r, http.StatusOK, views.FleetView(vm))
}
