package node_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/spaces"
	"github.com/adam91holt/clawdspace/tailnet"
)

// openForward forwards port of space on n and returns the forward once
// the node serves it.
func openForward(t *testing.T, n *nodetest.Node, space string, body map[string]any, want int) api.Forward {
	t.Helper()
	r := n.Do(t, "POST", "/api/spaces/"+space+"/ports", body)
	if r.Status != want {
		t.Fatalf("forwarding %v: %d %s, want %d", body, r.Status, r.Body, want)
	}
	var a api.ForwardAnswer
	r.JSON(t, &a)
	waitForwardState(t, n, space, a.Forward.Port, api.ForwardServing)
	return a.Forward
}

// waitForwardState waits until the forward of port is in state.
func waitForwardState(t *testing.T, n *nodetest.Node, space string, port uint16, state string) api.Forward {
	t.Helper()
	var got api.Forward
	nodetest.WaitUntil(t, "forward of port "+strconv.Itoa(int(port))+" to be "+state, func() bool {
		var ps api.Ports
		n.Do(t, "GET", "/api/spaces/"+space+"/ports", nil).JSON(t, &ps)
		for _, f := range ps.Forwards {
			if f.Port == port && f.State == state {
				got = f
				return true
			}
		}
		return false
	})
	return got
}

// get fetches url with a device's client.
func get(t *testing.T, hc *http.Client, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestForwardsOnTailnet serves a space's ports on the node's tailnet
// address to real tsnet devices: an HTTP server and a WebSocket echo
// server reached by a person with the ports grant, refused (in HTTP) and
// audited for a viewer; a paused space woken by a connection; closing a
// forward ends its listener and its open connections; HTTPS refused
// without the tailnet's certificates; the assignment kept across a
// restart.
func TestForwardsOnTailnet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "fwd", Namespace: "pf"})
	alice := ctl.Join(t, "alice-laptop")
	bob := ctl.Join(t, "bob-laptop")
	nodetest.WaitForPeers(t, n.TS, alice, bob)
	ctl.Grant(t, alice, []*tailnet.Node{n.TS}, spaces.Grant{Role: "operator"})
	ctl.Grant(t, bob, []*tailnet.Node{n.TS}, spaces.Grant{Role: "viewer"})
	name := portSpace(t, n, "fwd")

	web := openForward(t, n, name, map[string]any{"port": nodetest.PortHTTP}, http.StatusCreated)
	if web.NodePort != nodetest.PortHTTP || web.URL != "http://"+n.TS.DNSName()+":"+strconv.Itoa(nodetest.PortHTTP)+"/" || web.HTTPS {
		t.Fatalf("forward = %+v", web)
	}
	if again := openForward(t, n, name, map[string]any{"port": nodetest.PortHTTP}, http.StatusOK); again.NodePort != web.NodePort {
		t.Fatalf("forwarding again gave %+v, want %+v", again, web)
	}
	r := n.Do(t, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": nodetest.PortHTTP, "nodePort": 9000})
	wantErrorContains(t, r, http.StatusConflict, "already forwarded")
	r = n.Do(t, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": nodetest.PortEcho, "nodePort": 7777})
	wantErrorContains(t, r, http.StatusConflict, "node's own port")
	ws := openForward(t, n, name, map[string]any{"port": nodetest.PortWebSocket, "nodePort": 18765}, http.StatusCreated)

	// A node port that cannot be listened on (here: taken by another
	// listener of the node's device) is reported, not fatal, and served
	// once it is free and the forwards change.
	taken, err := n.TS.Listen(":18766")
	if err != nil {
		t.Fatal(err)
	}
	r = n.Do(t, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": nodetest.PortSource, "nodePort": 18766})
	wantCode(t, r, http.StatusCreated, "forwarding to a taken node port")
	failed := waitForwardState(t, n, name, nodetest.PortSource, api.ForwardFailed)
	if !strings.Contains(failed.Error, "18766") {
		t.Errorf("failed forward says %q", failed.Error)
	}
	taken.Close()
	openForward(t, n, name, map[string]any{"port": nodetest.PortLoopback, "nodePort": 18768}, http.StatusCreated)
	waitForwardState(t, n, name, nodetest.PortSource, api.ForwardServing)
	for _, p := range []int{nodetest.PortSource, nodetest.PortLoopback} {
		r = n.Do(t, "DELETE", "/api/spaces/"+name+"/ports/"+strconv.Itoa(p), nil)
		wantCode(t, r, http.StatusNoContent, "closing a forward")
	}

	// Alice, with the ports grant: HTTP and a WebSocket.
	aliceHC := alice.HTTPClient()
	base := "http://" + n.TS.Addr() + ":" + strconv.Itoa(int(web.NodePort))
	if code, body := get(t, aliceHC, base+"/hello.txt"); code != 200 || body != "hello from the space\n" {
		t.Fatalf("alice's GET = %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+n.TS.Addr()+":"+strconv.Itoa(int(ws.NodePort))+"/", &websocket.DialOptions{HTTPClient: aliceHC})
	if err != nil {
		t.Fatalf("alice's WebSocket: %v", err)
	}
	conn.SetReadLimit(-1)
	for _, msg := range []string{"hello", strings.Repeat("big ", 50_000)} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(got) != msg {
			t.Fatalf("echo = %v %d bytes %v, want %d bytes", typ, len(got), err, len(msg))
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	nodetest.WaitUntil(t, "alice's connection in the audit log", func() bool {
		ev, ok := findEvent(t, n, name, spaces.EventPortConnection, func(e spaces.Event) bool {
			return metaInt(e, "nodePort") == int64(ws.NodePort)
		})
		return ok && ev.Actor == loginOf(t, n, alice) && ev.Meta["door"] == "ports" && ev.Meta["device"] == "alice-laptop" &&
			metaInt(ev, "bytesIn") > 200_000 && metaInt(ev, "bytesOut") > 200_000
	})

	// HTTPS with the tailnet's certificate: TLS ends at the node, the
	// space sees plain TCP (here an echo server, with half-close).
	pool := nodetest.IssueTestCerts(t, n.TS)
	secure := openForward(t, n, name, map[string]any{"port": nodetest.PortEcho, "nodePort": 18443, "https": true}, http.StatusCreated)
	if secure.URL != "https://"+n.TS.DNSName()+":18443/" || !secure.HTTPS {
		t.Fatalf("https forward = %+v", secure)
	}
	raw, err := alice.Dial(ctx, "tcp", net.JoinHostPort(n.TS.Addr(), "18443"))
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: n.TS.DNSName()})
	if got := echoHalfClose(t, tc, []byte("secure")); string(got) != "secure" {
		t.Fatalf("echo over TLS = %q", got)
	}
	tc.Close()
	r = n.Do(t, "DELETE", "/api/spaces/"+name+"/ports/"+strconv.Itoa(nodetest.PortEcho), nil)
	wantCode(t, r, http.StatusNoContent, "closing the https forward")

	// Bob, a viewer, is refused with an HTTP answer, and audited.
	code, body := get(t, bob.HTTPClient(), base+"/hello.txt")
	if code != http.StatusForbidden || strings.Contains(body, "hello from the space") {
		t.Fatalf("bob's GET = %d %q, want 403", code, body)
	}
	ev := lastEvent(t, n, name, spaces.EventDenied)
	if ev.Meta["device"] != "bob-laptop" || ev.Meta["door"] != "ports" {
		t.Fatalf("bob's refusal audit = %+v", ev)
	}

	// The space page lists the ports with the forward's link; the
	// buttons only for whom may forward; its form forwards a port, and
	// another site's page may not use it.
	page := "http://" + n.TS.Addr() + ":7777/spaces/" + name
	code, body = get(t, aliceHC, page)
	if code != 200 || len(byTestID(t, body, "port-link")) != 2 || len(byTestID(t, body, "port-forward")) == 0 {
		t.Fatalf("alice's space page (%d) lacks the links or buttons:\n%s", code, body)
	}
	if code, body = get(t, bob.HTTPClient(), page); code != 200 || len(byTestID(t, body, "port-link")) != 2 ||
		len(byTestID(t, body, "port-forward")) != 0 || len(byTestID(t, body, "port-unforward")) != 0 {
		t.Fatalf("bob's space page (%d) is wrong:\n%s", code, body)
	}
	noRedirect := *aliceHC
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(origin string) int {
		req, _ := http.NewRequestWithContext(ctx, "POST", page+"/ports", strings.NewReader("port="+strconv.Itoa(nodetest.PortSource)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post("https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("a cross-site forward form: %d, want 403", code)
	}
	if code := post(""); code != http.StatusSeeOther {
		t.Fatalf("the forward form: %d, want 303", code)
	}
	source := waitForwardState(t, n, name, nodetest.PortSource, api.ForwardServing)
	r = n.Do(t, "DELETE", "/api/spaces/"+name+"/ports/"+strconv.Itoa(int(source.Port)), nil)
	wantCode(t, r, http.StatusNoContent, "closing the form's forward")

	// A connection wakes a paused space.
	wantCode(t, n.Do(t, "POST", "/api/spaces/"+name+"/stop", nil), http.StatusOK, "pause")
	if st := getSpace(t, n, name).Status; st != "paused" {
		t.Fatalf("space is %s, want paused", st)
	}
	if code, _ := get(t, aliceHC, base+"/hello.txt"); code != 200 {
		t.Fatalf("GET of a paused space = %d", code)
	}
	if st := getSpace(t, n, name).Status; st != "running" {
		t.Fatalf("space is %s after a connection, want running", st)
	}

	// Closing a forward ends its open connections and its listener.
	echo := openForward(t, n, name, map[string]any{"port": nodetest.PortEcho}, http.StatusCreated)
	raw, err = alice.Dial(ctx, "tcp", net.JoinHostPort(n.TS.Addr(), strconv.Itoa(int(echo.NodePort))))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	buf := make([]byte, 4)
	if _, err := raw.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(raw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the forward = %q %v", buf, err)
	}
	r = n.Do(t, "DELETE", "/api/spaces/"+name+"/ports/"+strconv.Itoa(nodetest.PortEcho), nil)
	wantCode(t, r, http.StatusNoContent, "closing a forward")
	_ = raw.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := raw.Read(buf); err == nil {
		t.Fatalf("the open connection still reads (%d bytes) after the forward closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the open connection was not ended when the forward closed")
	}
	if c, err := alice.Dial(ctx, "tcp", net.JoinHostPort(n.TS.Addr(), strconv.Itoa(int(echo.NodePort)))); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		_, _ = c.Write([]byte("ping"))
		if _, err := c.Read(buf); err == nil {
			t.Fatal("a closed forward still answers")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a closed forward's port still accepts connections")
		}
		c.Close()
	}
	evs := eventsOf(t, n, name, spaces.EventPortForward, spaces.EventPortUnforward)
	if len(evs) != 7+5 {
		t.Errorf("forward/unforward audit rows = %d, want 12: %+v", len(evs), evs)
	}

	// The assignment survives a restart, and is served again.
	n.Stop()
	n2 := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "fwd", Namespace: "pf", DataDir: n.DataDir})
	nodetest.WaitForPeers(t, n2.TS, alice)
	ctl.Grant(t, alice, []*tailnet.Node{n2.TS}, spaces.Grant{Role: "operator"})
	again := waitForwardState(t, n2, name, nodetest.PortWebSocket, api.ForwardServing)
	if again.NodePort != ws.NodePort {
		t.Fatalf("after a restart the forward is on %d, want %d", again.NodePort, ws.NodePort)
	}
	waitForwardState(t, n2, name, nodetest.PortHTTP, api.ForwardServing)
	if code, _ := get(t, aliceHC, "http://"+n2.TS.Addr()+":"+strconv.Itoa(int(web.NodePort))+"/hello.txt"); code != 200 {
		t.Fatalf("GET after a restart = %d", code)
	}
}

// loginOf is the login name the node sees for a device.
func loginOf(t *testing.T, n *nodetest.Node, dev *tailnet.Node) string {
	t.Helper()
	who, err := n.TS.WhoIs(t.Context(), dev.Addr())
	if err != nil || who.UserProfile == nil {
		t.Fatalf("whois %s: %v", dev.Addr(), err)
	}
	return who.UserProfile.LoginName
}

// eventsOf returns the space's events of the given types.
func eventsOf(t *testing.T, n *nodetest.Node, space string, types ...string) []spaces.Event {
	t.Helper()
	evs, err := n.Store.Events(t.Context(), spaces.AuditQuery{Space: space, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []spaces.Event
	for _, e := range evs {
		for _, typ := range types {
			if e.Type == typ {
				out = append(out, e)
			}
		}
	}
	return out
}

// TestPortTunnelThroughFleet opens the port tunnel to a space of another
// node, through the node asked (?node=): for a person on the tailnet,
// whose identity the first node vouches for, and for the API key.
func TestPortTunnelThroughFleet(t *testing.T) {
	ctl := nodetest.StartControl(t)
	n1 := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "tun-1", Namespace: "pg"})
	n2 := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "tun-2", Namespace: "ph"})
	alice := ctl.Join(t, "alice-laptop")
	nodetest.WaitForPeers(t, n1.TS, n2.TS, alice)
	serving := []*tailnet.Node{n1.TS, n2.TS}
	for _, n := range []*nodetest.Node{n1, n2} {
		ctl.Grant(t, n.TS, serving, spaces.Grant{Role: "node"})
	}
	ctl.Grant(t, alice, serving, spaces.Grant{Role: "operator"})
	for _, n := range []*nodetest.Node{n1, n2} {
		if err := n.Fleet.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	name := portSpace(t, n2, "fleettun")
	data := []byte(strings.Repeat("through the fleet ", 100_000))

	// Alice, on the tailnet, through node 1's tailnet address.
	tun, resp, err := dialTunnel(t, alice.HTTPClient(), "http://"+n1.TS.Addr()+":7777", name, nodetest.PortEcho, "?node=tun-2")
	if err != nil {
		t.Fatalf("alice's tunnel through tun-1: %v (%v)", err, resp)
	}
	if got := echoHalfClose(t, tun, data); string(got) != string(data) {
		t.Fatalf("echo through the fleet: %d bytes, want %d", len(got), len(data))
	}
	tun.Close()
	nodetest.WaitUntil(t, "the connection's audit row on tun-2", func() bool {
		ev, ok := findEvent(t, n2, name, spaces.EventPortConnection, func(e spaces.Event) bool { return e.Meta["via"] == "tun-1" })
		return ok && ev.Actor == loginOf(t, n2, alice) && metaInt(ev, "bytesIn") == int64(len(data))
	})

	// The API key, on node 1's local address.
	tun, resp, err = dialTunnel(t, n1.HTTP, n1.URL, name, nodetest.PortHTTP, "?node=tun-2")
	if err != nil {
		t.Fatalf("the key's tunnel through tun-1: %v (%v)", err, resp)
	}
	if res, body := httpOver(t, tun, "/hello.txt"); res.StatusCode != 200 || body != "hello from the space\n" {
		t.Fatalf("GET through the fleet = %d %q", res.StatusCode, body)
	}
	tun.Close()
	// Refusals of the other node come back before the upgrade.
	_, resp, err = dialTunnel(t, n1.HTTP, n1.URL, name, 9, "?node=tun-2")
	refusedBefore(t, resp, err, http.StatusConflict, "9")
}

// TestForwardHTTPSNeedsCertificates: on a tailnet that offers no
// certificates, an HTTPS forward is refused with 409 and what to do, and
// a plain one is served, its URL on the node's tailnet address.
func TestForwardHTTPSNeedsCertificates(t *testing.T) {
	ctl := nodetest.StartControlNoCertificates(t)
	n := nodetest.Start(t, nodetest.Options{Tailnet: ctl, Hostname: "nocerts", Namespace: "pn"})
	name := newSpace(t, n, "nocerts")
	r := n.Do(t, "POST", "/api/spaces/"+name+"/ports", map[string]any{"port": 3000, "https": true})
	wantErrorContains(t, r, http.StatusConflict, "issues no HTTPS certificates", "without https")
	if len(eventsOf(t, n, name, spaces.EventPortForward)) != 0 {
		t.Fatal("a refused HTTPS forward was recorded as opened")
	}
	f := openForward(t, n, name, map[string]any{"port": 3000}, http.StatusCreated)
	if f.URL != "http://"+n.TS.Addr()+":3000/" {
		t.Fatalf("forward URL without MagicDNS = %q", f.URL)
	}
	r = n.Do(t, "POST", "/api/spaces/t-no-such-space/ports", map[string]any{"port": 3000, "https": true})
	wantError(t, r, http.StatusNotFound, "")
}
