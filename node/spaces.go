package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// spaceJSON is the Space object of the wire contract.
type spaceJSON struct {
	Name         string     `json:"name"`
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Created      string     `json:"created"`
	Started      string     `json:"started"`
	Image        string     `json:"image"`
	Memory       int64      `json:"memory"`
	CPUs         float64    `json:"cpus"`
	GPU          bool       `json:"gpu"`
	Template     string     `json:"template,omitempty"`
	NetworkMode  string     `json:"networkMode,omitempty"`
	LastActivity string     `json:"lastActivity"`
	Volume       volumeJSON `json:"volume"`
}

type volumeJSON struct {
	Name       string `json:"name"`
	Mountpoint string `json:"mountpoint"`
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func toSpaceJSON(sp spaces.Space) spaceJSON {
	return spaceJSON{
		Name:         sp.Name,
		ID:           sp.ID,
		Status:       string(sp.Status),
		Created:      isoTime(sp.Created),
		Started:      isoTime(sp.Started),
		Image:        sp.Image,
		Memory:       sp.Memory,
		CPUs:         sp.CPUs,
		GPU:          sp.GPU,
		Template:     sp.Template,
		NetworkMode:  sp.NetworkMode,
		LastActivity: isoTime(sp.LastActivity),
		Volume:       volumeJSON{Name: sp.Volume, Mountpoint: spaces.WorkspacePath},
	}
}

func (s *Server) handleListSpaces(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Spaces.List(r.Context(), callerOf(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]spaceJSON, 0, len(list))
	for _, sp := range list {
		out = append(out, toSpaceJSON(sp))
	}
	// A request forwarded by another node acts here only: forwarding goes
	// one hop.
	if all, err := boolParam(r, "all"); err != nil {
		s.writeError(w, r, err)
		return
	} else if all && callerOf(r).Via == "" {
		s.listFleetSpaces(w, r, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"spaces": out})
}

func (s *Server) handleGetSpace(w http.ResponseWriter, r *http.Request) {
	sp, err := s.cfg.Spaces.Get(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"space": toSpaceJSON(sp)})
}

// createRequest is CreateSpace of the contract. Memory and cpus accept a
// number or a string, as scripts send both.
type createRequest struct {
	Name     string            `json:"name"`
	Memory   flexString        `json:"memory"`
	CPUs     optNumber         `json:"cpus"`
	GPU      *bool             `json:"gpu"`
	Image    string            `json:"image"`
	Template string            `json:"template"`
	Env      map[string]string `json:"env"`

	EnvFileText   *string `json:"envFileText"`
	EnvFileBase64 *string `json:"envFileBase64"`
	EnvFilePath   string  `json:"envFilePath"`
	RepoURL       string  `json:"repoUrl"`
	RepoBranch    string  `json:"repoBranch"`
	RepoDest      string  `json:"repoDest"`
	// Node places the space on a node of the fleet: its name, or "auto".
	Node string `json:"node"`
}

// flexString is a JSON string or number, kept as text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return spaces.Errorf(spaces.ErrInvalid, "memory must be a string such as \"2g\"")
	}
	*f = flexString(n.String())
	return nil
}

// optNumber is an optional JSON number or numeric string; null and "" mean
// "not given", so a template's value applies.
type optNumber struct {
	set bool
	v   float64
}

func (f *optNumber) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		*f = optNumber{set: true, v: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			*f = optNumber{set: true, v: v}
			return nil
		}
	}
	return spaces.Errorf(spaces.ErrInvalid, "cpus must be a number")
}

func (f optNumber) ptr() *float64 {
	if !f.set {
		return nil
	}
	return &f.v
}

func (s *Server) handleCreateSpace(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	body, err := s.readBody(w, r)
	if err == nil {
		err = decodeJSON(body, &req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Node != "" && !s.isSelf(req.Node) && callerOf(r).Via == "" {
		target, err := s.createTarget(r.Context(), callerOf(r), req.Node, req.GPU, req.Template)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if target != "" {
			s.forwardCreate(w, r, body, target)
			return
		}
	}
	sp, err := s.cfg.Spaces.Create(r.Context(), callerOf(r), spaces.CreateRequest{
		Name:     req.Name,
		Memory:   string(req.Memory),
		CPUs:     req.CPUs.ptr(),
		GPU:      req.GPU,
		Image:    req.Image,
		Template: req.Template,
		Env:      req.Env,

		EnvFileText:   req.EnvFileText,
		EnvFileBase64: req.EnvFileBase64,
		EnvFilePath:   req.EnvFilePath,
		RepoURL:       req.RepoURL,
		RepoBranch:    req.RepoBranch,
		RepoDest:      req.RepoDest,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"space": toSpaceJSON(sp)})
}

func (s *Server) handleDestroySpace(w http.ResponseWriter, r *http.Request) {
	removeVolume, err := boolParam(r, "removeVolume")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Spaces.Destroy(r.Context(), callerOf(r), r.PathValue("name"), removeVolume); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Space destroyed"})
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, spaces.Errorf(spaces.ErrInvalid, "%s must be true or false", name)
	}
	return b, nil
}

func (s *Server) handleStopSpace(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.Pause(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Space paused"})
}

func (s *Server) handleStartSpace(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Spaces.Start(r.Context(), callerOf(r), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "Space started"})
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Spaces.Stats(r.Context(), callerOf(r), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stats": st})
}

// createTarget resolves the node a create names ("", a node's name, or
// "auto") to another node to send it to, or "" for this one.
func (s *Server) createTarget(ctx context.Context, c spaces.Caller, node string, gpu *bool, template string) (string, error) {
	if node == "auto" {
		// Placement looks at the fleet: only for callers who may create
		// (the node that is picked decides again).
		if err := s.cfg.Spaces.Authorize(ctx, c, "", spaces.ActCreate); err != nil {
			return "", err
		}
		want, err := s.wantsGPU(ctx, c, gpu, template)
		if err != nil {
			return "", err
		}
		if node, err = s.place(ctx, want); err != nil {
			return "", err
		}
	}
	if node == "" || s.isSelf(node) {
		return "", nil
	}
	return node, nil
}

// wantsGPU reports whether a create asks for a GPU, itself or through its
// template.
func (s *Server) wantsGPU(ctx context.Context, c spaces.Caller, gpu *bool, template string) (bool, error) {
	if gpu != nil {
		return *gpu, nil
	}
	if template == "" {
		return false, nil
	}
	t, err := s.cfg.Spaces.Template(ctx, c, template)
	if err != nil {
		return false, err
	}
	return t.Resources.GPU, nil
}
