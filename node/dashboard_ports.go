package node

import (
	"net/http"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/views"
)

// portsPanel reads a space's ports for its page. A failure is shown in
// the panel, not as the page's: the rest of the page still works.
func (s *Server) portsPanel(r *http.Request, name string) views.Ports {
	c := callerOf(r)
	vm := views.Ports{Space: name, Served: s.cfg.Ports != nil, CanForward: c.Can(spaces.ActPorts, name)}
	sp, err := s.cfg.Spaces.Ports(r.Context(), c, name)
	if err != nil {
		_, msg := s.classify(err)
		vm.Error = "Could not read the space's ports: " + msg
		return vm
	}
	vm.Detected = sp.Detected
	forwards := map[uint16]views.ForwardRow{}
	for _, f := range sp.Forwards {
		v := s.forwardView(f)
		forwards[f.Port] = views.ForwardRow{Port: v.Port, NodePort: v.NodePort, HTTPS: v.HTTPS, URL: v.URL, State: v.State, Error: v.Error}
	}
	for _, l := range sp.Listening {
		row := views.PortRow{Port: l.Port, Address: l.Address, Loopback: l.Loopback()}
		if f, ok := forwards[l.Port]; ok {
			row.Forward = &f
			delete(forwards, l.Port)
		}
		vm.Listening = append(vm.Listening, row)
	}
	for _, f := range sp.Forwards {
		if row, ok := forwards[f.Port]; ok {
			vm.Forwards = append(vm.Forwards, row)
		}
	}
	return vm
}

// handleForwardPage forwards a port from the space page's button.
func (s *Server) handleForwardPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	port, err := api.ParsePort(r.PostFormValue("port"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	req := spaces.ForwardRequest{Port: port, HTTPS: r.PostFormValue("https") == "on"}
	if err := s.canServeForward(r.Context(), callerOf(r), name, req); err != nil {
		s.pageError(w, r, err)
		return
	}
	if _, _, err := s.cfg.Spaces.OpenForward(r.Context(), callerOf(r), name, req); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name, "forwarded")+"#ports", http.StatusSeeOther)
}

// handleUnforwardPage stops forwarding a port from the space page.
func (s *Server) handleUnforwardPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	port, err := api.ParsePort(r.PathValue("port"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if err := s.cfg.Spaces.CloseForward(r.Context(), callerOf(r), name, port); err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, withDone("/spaces/"+name, "unforwarded")+"#ports", http.StatusSeeOther)
}
