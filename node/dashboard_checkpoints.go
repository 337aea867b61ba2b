package node

import (
	"net/http"
	"net/url"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/views"
)

// checkpointsPanel is the space page's checkpoints: what the caller may
// read, with the buttons its actions allow.
func (s *Server) checkpointsPanel(r *http.Request, name string) views.Checkpoints {
	c := callerOf(r)
	vm := views.Checkpoints{Space: name, CanCheckpoint: c.Can(spaces.ActCheckpoint, name),
		CanFork: c.Can(spaces.ActCheckpoint, name) && c.Can(spaces.ActFiles, name) && c.Can(spaces.ActCreate, "")}
	list, err := s.cfg.Spaces.Checkpoints(r.Context(), c, name)
	if err != nil {
		_, msg := s.classify(err)
		vm.Error = "Could not list the checkpoints: " + msg
		return vm
	}
	vm.Limit, vm.TotalBytes = list.Limit, list.TotalBytes
	for _, cp := range list.Checkpoints {
		vm.List = append(vm.List, views.CheckpointRow{Name: cp.Name, Created: cp.Created, Size: cp.Size(), Image: cp.Image})
	}
	return vm
}

func (s *Server) handleCheckpointPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.cfg.Spaces.CreateCheckpoint(r.Context(), callerOf(r), name, r.PostFormValue("name")); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+url.PathEscape(name), "checkpoint")+"#checkpoints", http.StatusSeeOther)
}

func (s *Server) handleRestorePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	force := r.PostFormValue("force") == "true"
	if _, err := s.cfg.Spaces.Restore(r.Context(), callerOf(r), name, r.PathValue("checkpoint"), force); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+url.PathEscape(name), "restored"), http.StatusSeeOther)
}

func (s *Server) handleDeleteCheckpointPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.cfg.Spaces.DeleteCheckpoint(r.Context(), callerOf(r), name, r.PathValue("checkpoint")); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+url.PathEscape(name), "checkpoint-deleted")+"#checkpoints", http.StatusSeeOther)
}

func (s *Server) handleForkPage(w http.ResponseWriter, r *http.Request) {
	from := r.PathValue("name")
	if cp := r.PostFormValue("checkpoint"); cp != "" {
		from += "@" + cp
	}
	sp, err := s.cfg.Spaces.Fork(r.Context(), callerOf(r), from, r.PostFormValue("name"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+url.PathEscape(sp.Name), "forked"), http.StatusSeeOther)
}
