package node

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/a-h/templ"

	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/static"
	"github.com/adam91holt/clawdspace/views"
)

// pageCSP lets pages load scripts, styles and data from the node only. Style
// attributes are allowed because xterm.js sets them on its own elements.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// dashboardRoutes registers the pages people open in a browser. Every page
// resolves its caller as the API does (identify); state-changing forms are
// covered by the cross-origin protection that wraps the whole node.
func (s *Server) dashboardRoutes(root *http.ServeMux) {
	page := func(pattern string, h http.HandlerFunc) { root.Handle(pattern, s.page(h)) }

	root.Handle("GET /static/", s.staticFiles())
	root.HandleFunc("POST /signin", s.handleSignIn)
	root.HandleFunc("POST /signout", s.handleSignOut)

	page("GET /{$}", s.handleOverview)
	page("GET /live/overview", s.handleOverviewLive)
	page("GET /spaces/new", s.handleCreateForm)
	page("POST /spaces/new", s.handleCreateSubmit)
	page("GET /spaces/{name}", s.handleSpacePage)
	page("GET /spaces/{name}/observe", s.handleObservePart)
	page("POST /spaces/{name}/pause", s.handlePausePage)
	page("POST /spaces/{name}/start", s.handleStartPage)
	page("GET /spaces/{name}/destroy", s.handleDestroyConfirm)
	page("POST /spaces/{name}/destroy", s.handleDestroyPage)
	page("POST /spaces/{name}/checkpoints", s.handleCheckpointPage)
	page("POST /spaces/{name}/checkpoints/{checkpoint}/restore", s.handleRestorePage)
	page("POST /spaces/{name}/checkpoints/{checkpoint}/delete", s.handleDeleteCheckpointPage)
	page("POST /spaces/{name}/fork", s.handleForkPage)
	page("POST /spaces/{name}/ports", s.handleForwardPage)
	page("POST /spaces/{name}/ports/{port}/close", s.handleUnforwardPage)

	page("GET /spaces/{name}/file", s.handleFilePage)
	page("POST /spaces/{name}/file", s.handleFileSave)
	page("POST /spaces/{name}/files/upload", s.handleUpload)
	page("POST /spaces/{name}/files/delete", s.handleFileDelete)
	page("POST /spaces/{name}/files/mkdir", s.handleMkdirPage)

	page("GET /fleet", s.handleFleetPage)
	page("GET /templates", s.handleTemplatesPage)
	page("GET /templates/new", s.handleTemplateNew)
	page("GET /templates/{name}", s.handleTemplatePage)
	page("POST /templates", s.handleTemplateSave)
	page("POST /templates/{name}/delete", s.handleTemplateDeletePage)
	page("GET /audit", s.handleAuditPage)

	// Anything else outside /api/ is a page that does not exist.
	page("/", func(w http.ResponseWriter, r *http.Request) {
		s.pageError(w, r, spaces.Errorf(spaces.ErrNotFound, "There is no page at %s.", r.URL.Path))
	})
}

// staticFiles serves the dashboard's assets without a key. It serves files
// only: a folder (with or without its trailing slash) is a plain 404, never
// a listing of what the node ships.
func (s *Server) staticFiles() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(static.FS))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/static")
		name = strings.TrimPrefix(name, "/")
		if fi, err := fs.Stat(static.FS, name); name == "" || strings.HasSuffix(r.URL.Path, "/") || err != nil || fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}

// page resolves the caller of a page request. A ?key= link starts a
// session (its token in an HttpOnly, SameSite=Strict cookie) and sends the
// browser to the same address without the key; a browser without a valid
// key or session gets the sign-in page.
func (s *Server) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method == http.MethodGet && q.Has("key") {
			c, err := s.identify(r)
			if err != nil {
				s.refuseSignIn(w, r, err, "wrong")
				return
			}
			if c.Kind == spaces.KindAPIKey {
				if err := s.startSession(w, r); err != nil {
					s.pageError(w, r, err)
					return
				}
			}
			q.Del("key")
			clean := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
			s.redirectClean(w, r, clean.RequestURI())
			return
		}
		c, err := s.identify(r)
		if err != nil {
			problem := "missing"
			if headerOrQueryKey(r) != "" {
				problem = "wrong"
			}
			if _, err := r.Cookie(sessionCookie); err == nil {
				clearSessionCookie(w, r)
			}
			if _, err := r.Cookie(keyCookie); err == nil {
				clearKeyCookie(w, r)
			}
			s.refuseSignIn(w, r, err, problem)
			return
		}
		s.refreshSession(w, r)
		if _, err := r.Cookie(keyCookie); err == nil {
			clearKeyCookie(w, r) // the key itself, kept by earlier versions
		}
		h(w, withCaller(r, c.Through(spaces.DoorDashboard)))
	})
}

// redirectClean sends the browser to target. A navigation that came from
// another site would not carry the SameSite=Strict cookie through a
// redirect, so it gets a page that moves on by itself (same-site) instead.
func (s *Server) redirectClean(w http.ResponseWriter, r *http.Request, target string) {
	if r.Header.Get("Sec-Fetch-Site") != "cross-site" {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Refresh", "0; url="+target)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><title>Signing in</title><p>Signed in. <a href="` +
		templ.EscapeString(target) + `">Continue to the dashboard</a>.</p>`))
}

func clearKeyCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: keyCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1,
	})
}

// handleSignIn takes the key from the sign-in form, checked by the same
// rules as every request.
func (s *Server) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	key := strings.TrimSpace(r.PostFormValue("key"))
	probe := r.Clone(r.Context())
	probe.Header.Del("Authorization")
	probe.Header.Del("Cookie")
	probe.URL.RawQuery = url.Values{"key": {key}}.Encode()
	c, err := s.identify(probe)
	if err != nil || key == "" {
		s.refuseSignIn(w, r, err, "wrong")
		return
	}
	if c.Kind == spaces.KindAPIKey {
		if err := s.startSession(w, r); err != nil {
			s.pageError(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// handleSignOut ends the browser's session on the node, not only its
// cookie: a copy of the token is worthless afterwards.
func (s *Server) handleSignOut(w http.ResponseWriter, r *http.Request) {
	s.endSession(r)
	clearSessionCookie(w, r)
	clearKeyCookie(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// refuseSignIn answers a page request refused by identify with the
// sign-in page: 401 saying problem, or 429 with Retry-After while the
// browser's address must wait after too many wrong keys.
func (s *Server) refuseSignIn(w http.ResponseWriter, r *http.Request, err error, problem string) {
	status := http.StatusUnauthorized
	var retry *RetryLater
	if errors.As(err, &retry) {
		status, problem = http.StatusTooManyRequests, "limited"
		setRetryAfter(w, err)
	}
	ch := views.Chrome{Title: "Sign in", Node: s.selfName(), Version: s.cfg.Version}
	s.render(w, r, status, views.SignInPage(views.SignIn{Chrome: ch, Problem: problem}))
}

// render writes a page: rendered into a buffer first, so a failing view
// becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		if r.Context().Err() != nil {
			// The browser went away: not an error of the node.
			s.log.Debug("page not rendered: the client went away", "path", r.URL.Path, "err", err)
			return
		}
		s.log.Error("rendering page", "path", r.URL.Path, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// chrome is the layout's view model for the caller of r.
func (s *Server) chrome(r *http.Request, title, nav string) views.Chrome {
	c := callerOf(r)
	user := c.Label()
	if c.Kind == spaces.KindAPIKey {
		user = "API key"
	}
	_, err := r.Cookie(sessionCookie)
	return views.Chrome{
		Title: title, Nav: nav, Node: s.selfName(), Version: s.cfg.Version,
		User: user, Access: c.Access.String(), SignOut: err == nil, Notice: notice(r.URL.Query().Get("done")),
		CanCreate: c.Can(spaces.ActCreate, ""), CanAudit: c.Can(spaces.ActAdmin, ""),
	}
}

// notice turns the ?done= code of a redirect after an action into its
// message; codes keep other sites from putting words on the page.
func notice(code string) string {
	return map[string]string{
		"created":     "Space created.",
		"paused":      "Space paused.",
		"started":     "Space started.",
		"destroyed":   "Space destroyed.",
		"saved":       "Saved.",
		"uploaded":    "Uploaded.",
		"deleted":     "Deleted.",
		"folder":      "Folder created.",
		"forwarded":   "Port forwarded on the tailnet.",
		"unforwarded": "Port no longer forwarded.",

		"checkpoint":         "Checkpoint taken.",
		"checkpoint-deleted": "Checkpoint deleted.",
		"restored":           "Space restored.",
		"forked":             "Space forked.",
	}[code]
}

// pageAuthorize asks the domain, for a page that shows something before
// any Service call (a form, the fleet), whether the caller may do one of
// acts, and answers a refusal with an HTML page.
func (s *Server) pageAuthorize(w http.ResponseWriter, r *http.Request, space string, acts ...spaces.Action) bool {
	if err := s.cfg.Spaces.Authorize(r.Context(), callerOf(r), space, acts...); err != nil {
		s.pageError(w, r, err)
		return false
	}
	return true
}

// pageError answers a failed page request with the status and message
// writeError would use, as HTML.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.classifyAndLog(r, err)
	heading := map[int]string{
		http.StatusBadRequest: "That did not work", http.StatusForbidden: "Not allowed",
		http.StatusNotFound: "Not found", http.StatusConflict: "Conflict",
		http.StatusRequestEntityTooLarge: "Too large", http.StatusServiceUnavailable: "Unavailable",
	}[status]
	if heading == "" {
		heading = "Something went wrong"
	}
	if status == http.StatusForbidden {
		msg += ". Ask the node's owner for access."
	}
	s.render(w, r, status, views.ErrorView(views.ErrorPage{
		Chrome: s.chrome(r, heading, ""), Status: status, Heading: heading, Message: msg,
	}))
}

// backTo returns a path of this site to go back to, or def. It is
// rebuilt from its parsed path and query, so nothing a browser might read
// as another host (a scheme, "//", a backslash, a control character that
// browsers drop) gets through.
func backTo(p, def string) string {
	if p == "" || strings.ContainsAny(p, "\\") || strings.ContainsFunc(p, unicode.IsControl) {
		return def
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.ContainsAny(u.Path, "\\") {
		return def
	}
	clean := (&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}).String()
	if !strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "//") || strings.HasPrefix(clean, "/\\") {
		return def
	}
	return clean
}

// sameSite reports whether a GET came from this site's own pages or was
// typed (Sec-Fetch-Site same-origin or none, or a client that does not
// send it): only then does a page act on its own (connect a terminal,
// wake a paused space). On the tailnet a link from any site is signed in.
func sameSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// withDone adds ?done=code (or &done=) to a path.
func withDone(p, code string) string {
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	q := u.Query()
	q.Set("done", code)
	u.RawQuery = q.Encode()
	return u.String()
}

// readForm reads a form body of up to the node's body limit. A larger
// one is spaces.ErrTooLarge (413) with a message that says so: nothing of
// it was read, so nothing was changed.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	err := r.ParseForm()
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return spaces.Errorf(spaces.ErrTooLarge, "The form is larger than this node's limit of %s, so nothing was saved. Go back to keep your text, and make it smaller",
			views.Bytes(s.cfg.MaxBodyBytes))
	}
	return spaces.Errorf(spaces.ErrInvalid, "The form could not be read")
}

// userError returns the message of an error the user can fix (shown on
// the form) rather than a failure of the node.
func userError(err error) (string, bool) {
	if errors.Is(err, spaces.ErrInvalid) || errors.Is(err, spaces.ErrNotFound) || errors.Is(err, spaces.ErrExists) || errors.Is(err, spaces.ErrTooLarge) {
		msg, ok := spaces.Message(err)
		return msg, ok
	}
	return "", false
}
