package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/adam91holt/clawdspace/fleet"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
)

// ui drives the dashboard of one node in headless Chromium.
type ui struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

// do runs browser steps, failing the test on the first error with what
// the page said at that moment.
func (u *ui) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(u.ctx, chromedp.Location())
		text, _ := chromedp.Run(u.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
		u.t.Fatalf("%s: %v\nat %s, the page says:\n%s", what, err, loc, text)
	}
}

// open loads a page and waits until sel is visible.
func (u *ui) open(path, sel string) {
	u.t.Helper()
	u.do("opening "+path, chromedp.Navigate(u.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// shoot saves the current page at desktop (1280 px) and phone (390 px)
// widths, and fails when the phone layout scrolls sideways.
func (u *ui) shoot(name string) {
	u.t.Helper()
	for _, vp := range []struct {
		label  string
		w, h   int64
		mobile bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateScale(2))
		}
		u.do("resizing to "+vp.label, chromedp.EmulateViewport(vp.w, vp.h, opts...))
		// Let layout (and the terminal's fit on resize) settle: wait for two
		// animation frames rather than for a fixed time.
		if _, err := chromedp.Run(u.ctx, chromedp.Evaluate[bool](
			`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(true), 150))))`,
			chromedp.EvalAwaitPromise)); err != nil {
			u.t.Fatalf("settling: %v", err)
		}
		png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			u.t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(u.shots, fmt.Sprintf("%s-%s.png", name, vp.label))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			u.t.Fatal(err)
		}
		if vp.mobile {
			over, err := chromedp.Run(u.ctx, chromedp.Evaluate[string](`(() => {
				const w = document.documentElement.clientWidth;
				if (document.documentElement.scrollWidth <= w) return "";
				const wide = [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > w + 1)
					.slice(0, 5).map(e => e.tagName + "." + e.className + "[" + Math.round(e.getBoundingClientRect().right) + "]");
				return "scrollWidth " + document.documentElement.scrollWidth + " > " + w + ": " + wide.join(", ");
			})()`))
			if err != nil {
				u.t.Fatal(err)
			}
			if over != "" {
				u.t.Errorf("%s scrolls sideways at 390 px: %s", name, over)
			}
		}
	}
	u.do("back to desktop", chromedp.EmulateViewport(1280, 900, chromedp.EmulatePortrait))
}

// submit clicks a button that loads a new page (a form's submit, a link)
// and waits for that new page, then for sel on it: waiting only for sel
// could match the old page while the new one still loads.
func (u *ui) submit(what, click, sel string) {
	u.t.Helper()
	u.do(what,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.__csOldPage = true`)(ctx, t)
			return err
		}),
		chromedp.Click(css(click)),
		// Evaluations fail while the page changes: ask again until the
		// new page answers, within the step's deadline.
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				fresh, err := chromedp.Evaluate[bool](`!window.__csOldPage && document.readyState === "complete"`)(ctx, t)
				if err == nil && fresh {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("no new page: %w (last error %v)", ctx.Err(), err)
				case <-tick.C:
				}
			}
		}),
		chromedp.WaitVisible(css(sel)),
	)
}

// shootDark saves the current page at desktop width with the system set
// to dark mode.
func (u *ui) shootDark(name string) {
	u.t.Helper()
	setScheme := func(v string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}},
			})
			return err
		})
	}
	// The terminal re-fits a moment after the phone-width shot: wait
	// until it has fitted the desktop width again.
	u.waitFor("the terminal to fit the desktop width",
		`!document.querySelector('[data-term][data-fit-width]') || document.querySelector('[data-term]').dataset.fitWidth === String(window.innerWidth)`, 10*time.Second)
	u.do("dark mode", setScheme("dark"))
	png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		u.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(u.shots, name+"-dark-desktop.png"), png, 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.do("light mode", setScheme(""))
}

// eval returns the value of a JavaScript expression.
func (u *ui) eval(expr string) string {
	u.t.Helper()
	v, err := chromedp.Run(u.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		u.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true.
func (u *ui) waitFor(what, predicate string, timeout time.Duration) {
	u.t.Helper()
	u.do("waiting for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t)
		return err
	}))
}

// watchProblems fails the test, when it ends, on any JavaScript exception
// or Content-Security-Policy violation in the browser's pages.
func watchProblems(t *testing.T, ctx context.Context) {
	t.Helper()
	var mu sync.Mutex
	var problems []string
	add := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, s)
	}
	// A violation also reaches the page as an event: report it on the
	// console, where the listener sees it whatever the browser logs.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
			Source: `document.addEventListener("securitypolicyviolation", e => console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));`,
		})
		return err
	})); err != nil {
		t.Fatalf("watching for CSP violations: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				var text string
				if json.Unmarshal(a.Value, &text) == nil && strings.HasPrefix(text, "CSP violation") {
					add(text)
				}
			}
		case *cdplog.EventEntryAdded:
			if e := ev.Entry; e.Source == cdplog.EntrySourceSecurity || strings.Contains(e.Text, "Content Security Policy") {
				add(fmt.Sprintf("%s: %s (%s)", e.Source, e.Text, e.URL))
			}
		}
	}); err != nil {
		t.Fatalf("listening to the browser: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("in the browser: %s", p)
		}
	})
}

// pressKey presses one named key (Escape, Tab).
func pressKey(key string, code int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeRawKeyDown, Key: key, Code: key, WindowsVirtualKeyCode: code, NativeVirtualKeyCode: code}
		up := down
		up.Type = input.DispatchKeyEventTypeKeyUp
		for _, ev := range []input.DispatchKeyEventParams{down, up} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestBrowserDashboard drives the dashboard of a real node on the real
// engine in headless Chromium: sign in with a ?key= link, create a space
// through the form (after a refused try), run echo in the web terminal,
// upload a file and download it back, edit it, pause and resume, look at
// the templates, audit and fleet pages, and destroy the space. Screenshots
// of every main page at 1280 and 390 px go to the folder the test logs.
func TestBrowserDashboard(t *testing.T) {
	n := nodetest.Start(t, nodetest.Options{})
	ctx := nodetest.Browser(t)
	watchProblems(t, ctx)
	u := &ui{t: t, ctx: ctx, base: n.URL, shots: nodetest.ScreenshotDir(t)}
	t.Logf("screenshots: %s", u.shots)
	name := nodetest.Name(t, n.Engine, "ui")

	// Without a key: the sign-in page says how to get in.
	u.open("/", `[data-testid="signin"]`)
	u.shoot("signin")

	// A ?key= link signs in and leaves the address bar without the key.
	u.open("/?key="+nodetest.Key, `[data-testid="overview-live"]`)
	if loc := u.eval(`location.href`); loc != n.URL+"/" {
		t.Errorf("after the ?key= link the address is %q, want %q", loc, n.URL+"/")
	}
	if got := u.eval(`document.cookie`); strings.Contains(got, nodetest.Key) {
		t.Errorf("the key cookie is readable from JavaScript: %q", got)
	}
	u.shoot("overview-empty")

	// Create: a value the API refuses is shown next to its field.
	u.open("/spaces/new", `[data-testid="create-form"]`)
	u.shoot("create")
	u.do("filling the form",
		chromedp.SetValue(css(`[data-testid="field-name"]`), name),
		chromedp.SetValue(css(`[data-testid="field-memory"]`), "lots"),
	)
	u.submit("submitting a bad memory", `[data-testid="create-submit"]`, `[data-testid="error-memory"]`)
	if msg := u.eval(`document.querySelector('[data-testid="error-memory"]').textContent`); !strings.Contains(msg, "memory") {
		t.Errorf("memory error = %q", msg)
	}
	if v := u.eval(`document.querySelector('[data-testid="field-name"]').value`); v != name {
		t.Errorf("the form lost the name: %q", v)
	}
	u.shoot("create-error")
	u.do("fixing the memory", chromedp.SetValue(css(`[data-testid="field-memory"]`), "128m"))
	u.submit("creating the space", `[data-testid="create-submit"]`, `[data-testid="space-page"][data-space="`+name+`"]`)
	if sp := getSpace(t, n, name); sp.Status != "running" || sp.Memory != 128<<20 {
		t.Fatalf("created space = %+v, want running with 128 MiB", sp)
	}

	// Terminal: echo through xterm.js and the WebSocket.
	u.do("connecting the terminal",
		chromedp.Click(css(`[data-testid="terminal-connect"]`)),
		chromedp.WaitVisible(css(`[data-testid="terminal"][data-connected="true"]`)),
		chromedp.Click(css(`[data-testid="terminal"] .xterm-screen`)),
		typeKeys("echo hello-$((6*7))\r"),
	)
	u.waitFor("the echo in the terminal", `(document.querySelector('.xterm-rows')?.textContent || "").includes("hello-42")`, 30*time.Second)
	// The terminal is no keyboard trap: Esc then Tab moves the focus out.
	u.do("leaving the terminal by keyboard", pressKey("Escape", 27), pressKey("Tab", 9))
	if inside := u.eval(`String(!!document.activeElement.closest('[data-term]'))`); inside != "false" {
		t.Errorf("Esc then Tab left the focus in the terminal")
	}
	u.waitFor("stats samples for the charts", `+(document.querySelector('[data-stats]')?.dataset.samples || 0) >= 2`, 30*time.Second)
	u.waitFor("the observability panel", `!!document.querySelector('[data-testid="observe"]')`, 30*time.Second)
	u.shoot("space-terminal")
	u.shootDark("space-terminal")

	// Upload a file, then download it back.
	dl := t.TempDir()
	src := filepath.Join(t.TempDir(), "hello.txt")
	content := "uploaded from Chromium\nsecond line\n"
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	row := `[data-testid="file-row"][data-path="/workspace/hello.txt"]`
	u.do("choosing a file", chromedp.SetUploadFiles(css(`[data-testid="upload-input"]`), []string{src}))
	u.submit("uploading", `[data-testid="upload-submit"]`, row)
	u.shoot("space-files")
	u.do("downloading",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl,
			})
			return err
		}),
		chromedp.Click(css(row+` [data-testid="file-download"]`)),
	)
	waitFile(t, filepath.Join(dl, "hello.txt"), content)

	// Edit the file and save it.
	u.submit("opening the file", row+` [data-testid="file-open"]`, `[data-testid="file-content"]`)
	if got := u.eval(`document.querySelector('[data-testid="file-content"]').value`); got != content {
		t.Errorf("editor shows %q, want %q", got, content)
	}
	edited := "edited in the browser\nline two\n"
	u.do("editing", chromedp.SetValue(css(`[data-testid="file-content"]`), edited))
	u.submit("saving", `[data-testid="file-save"]`, `[data-testid="notice"]`)
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+name+"/file?raw=true&path=/hello.txt", nil); string(res.Body) != edited {
		t.Errorf("after saving, the file holds %q (status %d), want %q", res.Body, res.Status, edited)
	}
	u.shoot("file-edit")

	// New folder, from the space page.
	u.open("/spaces/"+name, `[data-testid="mkdir-form"]`)
	u.do("naming a folder", chromedp.SetValue(css(`[data-testid="mkdir-name"]`), "made-here"))
	u.submit("making a folder", `[data-testid="mkdir-submit"]`, `[data-testid="files-empty"]`)
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+name+"/files?path=/made-here", nil); res.Status != http.StatusOK {
		t.Errorf("the new folder is not there: %d %s", res.Status, res.Body)
	}

	// Pause and resume.
	u.open("/spaces/"+name, `[data-testid="action-pause"]`)
	u.submit("pausing", `[data-testid="action-pause"]`, `[data-testid="space-page"] [data-status="paused"]`)
	u.do("the paused file browser", chromedp.WaitVisible(css(`[data-testid="files-paused"]`)))
	if sp := getSpace(t, n, name); sp.Status != "paused" {
		t.Errorf("after Pause the space is %s", sp.Status)
	}
	u.shoot("space-paused")
	u.submit("starting", `[data-testid="action-start"]`, `[data-testid="space-page"] [data-status="running"]`)
	if sp := getSpace(t, n, name); sp.Status != "running" {
		t.Errorf("after Start the space is %s", sp.Status)
	}

	// Templates: a refused YAML shows the node's message; a good one saves;
	// delete asks first.
	u.open("/templates", `[data-testid="templates"]`)
	u.shoot("templates")
	u.open("/templates/default", `[data-testid="template-yaml"]`)
	u.shoot("template-default")
	u.open("/templates/new", `[data-testid="template-yaml"]`)
	u.do("writing a bad template", chromedp.SetValue(css(`[data-testid="template-yaml"]`), "name: ui-tpl\nnetwork:\n  mode: moon\n"))
	u.submit("saving a bad template", `[data-testid="template-save"]`, `[data-testid="template-error"]`)
	if msg := u.eval(`document.querySelector('[data-testid="template-error"]').textContent`); !strings.Contains(msg, "network.mode") {
		t.Errorf("template error = %q", msg)
	}
	u.shoot("template-error")
	u.do("writing a good template", chromedp.SetValue(css(`[data-testid="template-yaml"]`), "name: ui-tpl\ndescription: made in the browser\nnetwork:\n  mode: lan\n"))
	u.submit("saving a good template", `[data-testid="template-save"]`, `[data-testid="template-delete"]`)
	u.do("asking to delete", chromedp.Click(css(`[data-testid="template-delete"]`)))
	u.submit("deleting the template", `[data-testid="template-delete-confirm"]`, `[data-testid="templates"]`)
	if got := u.eval(`String(!!document.querySelector('[data-template="ui-tpl"]'))`); got != "false" {
		t.Errorf("the deleted template is still listed")
	}

	// Audit: this space's events, newest first, filtered by type.
	u.open("/audit?space="+name, `[data-testid="events"]`)
	types := u.eval(`[...document.querySelectorAll('[data-testid="event-row"]')].map(e => e.dataset.type).join(",")`)
	for _, want := range []string{"space.create", "terminal.open", "space.file.write", "space.pause", "space.start"} {
		if !strings.Contains(types, want) {
			t.Errorf("audit page of %s lacks %s: %s", name, want, types)
		}
	}
	if !strings.HasPrefix(types, "space.start") {
		t.Errorf("audit page is not newest first: %s", types)
	}
	u.shoot("audit")
	u.open("/audit?space="+name+"&type=space.file.write", `[data-testid="events"]`)
	if got := u.eval(`[...new Set([...document.querySelectorAll('[data-testid="event-row"]')].map(e => e.dataset.type))].join(",")`); got != "space.file.write" {
		t.Errorf("audit filtered by type shows %s", got)
	}

	// Fleet: the nodes panel and the spaces of every node.
	u.open("/fleet", `[data-testid="node-row"]`)
	u.do("waiting for the fleet's spaces", chromedp.WaitVisible(css(`[data-testid="fleet-row"][data-space="`+name+`"]`)))
	u.shoot("fleet")
	// Pause and Start from the fleet page, then destroy another space there
	// (the button asks first).
	fleetRow := `[data-testid="fleet-row"][data-space="` + name + `"]`
	u.do("pausing from the fleet", chromedp.Click(css(fleetRow+` [data-testid="fleet-toggle"]`)),
		chromedp.WaitVisible(css(fleetRow+` [data-status="paused"]`)))
	if sp := getSpace(t, n, name); sp.Status != "paused" {
		t.Errorf("after the fleet's Pause the space is %s", sp.Status)
	}
	u.do("starting from the fleet", chromedp.Click(css(fleetRow+` [data-testid="fleet-toggle"]`)),
		chromedp.WaitVisible(css(fleetRow+` [data-status="running"]`)))
	doomed := newSpace(t, n, "fleetgone")
	u.open("/fleet", `[data-testid="fleet-row"][data-space="`+doomed+`"]`)
	doomedRow := `[data-testid="fleet-row"][data-space="` + doomed + `"]`
	u.do("arming destroy", chromedp.Click(css(doomedRow+` [data-testid="fleet-destroy"]`)))
	if label := u.eval(`document.querySelector('` + doomedRow + ` [data-testid="fleet-destroy"]').textContent`); label != "Confirm destroy" {
		t.Errorf("the first click on Destroy shows %q", label)
	}
	u.do("destroying from the fleet", chromedp.Click(css(doomedRow+` [data-testid="fleet-destroy"]`)))
	u.waitFor("the destroyed space to leave the fleet", `!document.querySelector('`+doomedRow+`')`, 60*time.Second)
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+doomed, nil); res.Status != http.StatusNotFound {
		t.Errorf("after the fleet's Destroy the space answers %d", res.Status)
	}

	// Overview: the space is listed and the page refreshes itself.
	u.open("/", `[data-testid="space-row"][data-space="`+name+`"]`)
	u.waitFor("a live refresh", `document.querySelector('[data-testid="overview-live"]').dataset.loaded === "true"`, 30*time.Second)
	u.shoot("overview")

	// Destroy, after the confirmation page.
	u.submit("destroying", `[data-space="`+name+`"] [data-testid="action-destroy"]`, `[data-testid="destroy-form"]`)
	u.shoot("destroy")
	u.do("also the volume", chromedp.Click(css(`[data-testid="destroy-volume"]`)))
	u.submit("confirming", `[data-testid="destroy-confirm"]`, `[data-testid="notice"]`)
	if got := u.eval(`String(!!document.querySelector('[data-space="` + name + `"]'))`); got != "false" {
		t.Errorf("the destroyed space is still listed")
	}
	if res := n.Do(t, http.MethodGet, "/api/spaces/"+name, nil); res.Status != http.StatusNotFound {
		t.Errorf("after Destroy the space answers %d", res.Status)
	}
}

// typeKeys types text as a keyboard does, one keydown (with its text) and
// keyup per character, as Puppeteer does; "\r" is Enter.
func typeKeys(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range text {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: string(r), Text: string(r)}
			if r == '\r' {
				down.Key, down.Code, down.WindowsVirtualKeyCode = "Enter", "Enter", 13
			}
			up := down
			up.Type, up.Text = input.DispatchKeyEventTypeKeyUp, ""
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// waitFile waits until a download has landed with the expected content.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []byte
	for time.Now().Before(deadline) {
		var err error
		if got, err = os.ReadFile(path); err == nil && string(got) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("download %s: got %q, want %q", path, got, want)
}

// TestBrowserCreateOnOtherNode: the create form makes a space on another
// node of a static fleet and shows a page of this node that links to it
// (the CSP's form-action 'self' would block a redirect there); the fleet
// page names that node when it stops answering.
func TestBrowserCreateOnOtherNode(t *testing.T) {
	b := nodetest.Start(t, nodetest.Options{Hostname: "ui-b", Namespace: "ub"})
	a := nodetest.Start(t, nodetest.Options{Hostname: "ui-a", Namespace: "ua",
		Nodes: []fleet.StaticNode{{Name: "ui-a", URL: "http://127.0.0.1:1"}, {Name: "ui-b", URL: b.URL}}})
	if err := a.Fleet.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := nodetest.Browser(t)
	watchProblems(t, ctx)
	u := &ui{t: t, ctx: ctx, base: a.URL, shots: nodetest.ScreenshotDir(t)}
	name := nodetest.Name(t, b.Engine, "there")
	u.open("/spaces/new?key="+nodetest.Key, `[data-testid="field-node"]`)
	u.do("filling the form",
		chromedp.SetValue(css(`[data-testid="field-name"]`), name),
		chromedp.SetValue(css(`[data-testid="field-memory"]`), "128m"),
		chromedp.SetValue(css(`[data-testid="field-node"]`), "ui-b"),
	)
	u.submit("creating on ui-b", `[data-testid="create-submit"]`, `[data-testid="created"]`)
	if href := u.eval(`document.querySelector('[data-testid="created-open"]').href`); href != b.URL+"/spaces/"+name {
		t.Errorf("the page links to %q, want %q", href, b.URL+"/spaces/"+name)
	}
	u.shoot("created-elsewhere")
	if _, err := b.Service.Get(t.Context(), spaces.CallerAPIKey(), name); err != nil {
		t.Fatalf("the space is not on ui-b: %v", err)
	}

	// A node that does not answer when the fleet page asks is named there.
	b.Stop()
	u.open("/fleet", `[data-testid="fleet-node-error"][data-node="ui-b"]`)
	if msg := u.eval(`document.querySelector('[data-testid="fleet-node-error"]').textContent`); !strings.Contains(msg, "Could not reach ui-b:") {
		t.Errorf("the fleet page says %q", msg)
	}
}
