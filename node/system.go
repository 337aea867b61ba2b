package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: s.cfg.Version, Node: s.selfName()})
}

// capabilities are the contract's capabilities; full adds the extras that
// fleet placement uses (CPUs, memory, free memory).
func (s *Server) capabilities(snap spaces.MachineSnapshot, full bool) spaces.NodeCapabilities {
	g := s.cfg.Machine.GPU()
	c := spaces.NodeCapabilities{GPU: g.Present, GPUName: g.Name, GPUMemory: g.Memory, Arch: snap.Arch, Platform: snap.Platform}
	if full {
		c.CPUs, c.Memory, c.MemoryFree = snap.CPUs, snap.MemTotal, snap.MemFree
	}
	return c
}

func (s *Server) handleCapabilities(w http.ResponseWriter, r *http.Request) {
	total, running, err := s.cfg.Spaces.Count(r.Context(), callerOf(r))
	if errors.Is(err, spaces.ErrForbidden) {
		s.writeError(w, r, err)
		return
	}
	c := s.capabilities(s.cfg.Machine.Snapshot(), true)
	if err == nil {
		c.Spaces, c.SpacesRunning = &total, &running
	}
	writeJSON(w, http.StatusOK, api.CapabilitiesFrom(c))
}

func (s *Server) handleSystem(w http.ResponseWriter, r *http.Request) {
	info, err := s.cfg.Spaces.EngineInfo(r.Context(), callerOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	snap := s.cfg.Machine.Snapshot()
	used := snap.MemTotal - min(snap.MemFree, snap.MemTotal)
	out := api.System{
		Hostname:    snap.Hostname,
		Platform:    snap.Platform,
		Arch:        snap.Arch,
		CPUs:        snap.CPUs,
		LoadAverage: snap.Load,
		Memory: api.Memory{
			Total: humanBytes(snap.MemTotal), Free: humanBytes(snap.MemFree),
			Used: humanBytes(used), Percentage: percent(used, snap.MemTotal),
		},
		Uptime: snap.UptimeSec,
		Docker: api.Docker{
			Version: info.Version, APIVersion: info.APIVersion, Containers: info.Containers,
			ContainersRunning: info.ContainersRunning, ContainersPaused: info.ContainersPaused, Images: info.Images,
		},
		Capabilities: api.CapabilitiesFrom(s.capabilities(snap, false)),
	}
	if st, err := s.cfg.Spaces.PoolStatus(r.Context(), callerOf(r)); err == nil {
		for _, w := range st {
			out.WarmPool = append(out.WarmPool, api.WarmPool{Template: w.Template, Size: w.Size, Ready: w.Ready})
		}
	}
	if d := snap.Disk; d != nil {
		out.Disk = &api.Disk{
			Total: humanBytes(d.Total), Used: humanBytes(d.Used), Available: humanBytes(d.Available),
			Percentage: percent(d.Used, d.Used+d.Available),
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// humanBytes formats like the older node: "23.5 GB" (binary units).
func humanBytes(b uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	v := float64(b)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", b)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

func percent(part, whole uint64) string {
	if whole == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

// handleNodes answers from the fleet's cached health, at once.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.Authorize(r.Context(), callerOf(r), "", spaces.ActRead); err != nil {
		s.writeError(w, r, err)
		return
	}
	nodes, updated, err := s.nodeList(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Node, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, api.NodeFrom(n.NodeHealth, n.Self))
	}
	writeJSON(w, http.StatusOK, api.NodeList{Nodes: out, LastUpdatedAt: updated.UnixMilli()})
}

// selfName is this node's name in the fleet.
func (s *Server) selfName() string { return s.cfg.NodeName }

// isSelf reports whether name is this node's.
func (s *Server) isSelf(name string) bool { return strings.EqualFold(name, s.selfName()) }

// selfHealth is this node as a member of the fleet, live.
func (s *Server) selfHealth() spaces.NodeHealth {
	caps := s.capabilities(s.cfg.Machine.Snapshot(), true)
	now := s.clock.Now()
	return spaces.NodeHealth{
		Name: s.selfName(), URL: s.cfg.URL, Status: spaces.NodeOnline, Version: s.cfg.Version,
		Capabilities: &caps, LastSeen: now, CheckedAt: now,
	}
}

// fleetMember is a node of the fleet as this node knows it.
type fleetMember struct {
	spaces.NodeHealth
	Self bool
}

// nodeList returns this node, live, then the others from the cache, and
// when their health was last refreshed.
func (s *Server) nodeList(ctx context.Context) ([]fleetMember, time.Time, error) {
	self := s.selfHealth()
	now := self.CheckedAt
	out := []fleetMember{{Self: true, NodeHealth: self}}
	if s.cfg.Fleet == nil {
		return out, now, nil
	}
	nodes, updated, err := s.cfg.Fleet.Nodes(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, n := range nodes {
		out = append(out, fleetMember{NodeHealth: n})
	}
	if updated.IsZero() {
		updated = now
	}
	return out, updated, nil
}

func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Spaces.Templates(r.Context(), callerOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.TemplateSummary, 0, len(list))
	for _, t := range list {
		out = append(out, api.TemplateSummary{Name: t.Name, Description: t.Description})
	}
	writeJSON(w, http.StatusOK, api.TemplateList{Templates: out})
}

func (s *Server) handleTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Spaces.Template(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.TemplateYAML{Name: t.Name, YAML: t.YAML()})
}

func (s *Server) handlePutTemplate(w http.ResponseWriter, r *http.Request) {
	var req api.PutTemplate
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.YAML == nil {
		s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "yaml is required"))
		return
	}
	t, err := s.cfg.Spaces.PutTemplate(r.Context(), callerOf(r), *req.YAML)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.TemplateAnswer{Template: api.TemplateFrom(t)})
}

func (s *Server) handleDeleteTemplate(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.DeleteTemplate(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Message{Message: "OK"})
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	qv := r.URL.Query()
	q := spaces.AuditQuery{Space: qv.Get("space"), Type: qv.Get("type"), Actor: strings.TrimSpace(qv.Get("actor")), Limit: 200}
	if v := strings.TrimSpace(r.URL.Query().Get("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "limit must be a whole number between 1 and 1000"))
			return
		}
		q.Limit = n
	}
	if v := strings.TrimSpace(qv.Get("before")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.writeError(w, r, spaces.Errorf(spaces.ErrInvalid, "before must be an event id (a whole number above 0)"))
			return
		}
		q.Before = n
	}
	events, err := s.cfg.Spaces.Events(r.Context(), callerOf(r), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]api.Event, 0, len(events))
	for _, e := range events {
		out = append(out, api.EventFrom(e))
	}
	writeJSON(w, http.StatusOK, api.EventList{Events: out})
}
