package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/engine"
	"github.com/adam91holt/clawdspace/nodetest"
)

// reachPort says whether a space gets an HTTP answer from addr:port.
func reachPort(t *testing.T, n *nodetest.Node, name, addr string, port int) bool {
	t.Helper()
	out, code := sh(t, n, name, fmt.Sprintf("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s %d", addr, port))
	return code == 0 && strings.Contains(out, "reachable")
}

// hostReaches says whether the test, on the host as the node is, gets an
// answer from a server in a space within a few seconds.
func hostReaches(t *testing.T, ip string, port int) bool {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := c.Get("http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/index.html")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(b), "reachable") {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// spaceIP is a space's address on its network.
func spaceIP(t *testing.T, n *nodetest.Node, name string) string {
	t.Helper()
	for _, nw := range inspect(t, n, name).NetworkSettings.Networks {
		if nw.IPAddress.IsValid() {
			return nw.IPAddress.String()
		}
	}
	t.Fatalf("space %s has no address", name)
	return ""
}

// hostServer serves "reachable" on every address of the host (0.0.0.0),
// as a host service a space must not see would, and returns its port.
func hostServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "reachable\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// dummyLink makes an empty bridge on the host (this kernel has no dummy
// links), so the host has addresses the test owns (198.51.100.0/24,
// TEST-NET-2, standing in for a public address), and removes it when the
// test ends.
func dummyLink(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	link := "csd" + hex.EncodeToString(b)
	ip(t, "link", "add", link, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", link).Run() })
	ip(t, "link", "set", link, "up")
	return link
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// testNetAddr is an address of 198.51.100.0/24 that this run alone uses.
func testNetAddr() string {
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	return fmt.Sprintf("198.51.100.%d", 2+int(b[0])%250)
}

// TestHostAddressesBlocked: a space whose template blocks private ranges
// cannot reach the node's host on any of its addresses, public ones
// included, not even one added after the space started; the ports its
// template opens stay reachable, and lan spaces reach everything.
func TestHostAddressesBlocked(t *testing.T) {
	if err := engine.EgressSupported(); err != nil {
		t.Fatalf("network rules cannot be enforced here (%v): the tests run as root, as the node does", err)
	}
	n := nodetest.Start(t, nodetest.Options{})
	port, closed := hostServer(t), hostServer(t)
	link := dummyLink(t)
	first := testNetAddr()
	ip(t, "addr", "add", first+"/32", "dev", link)

	tpl := fmt.Sprintf("name: openhost\nnetwork:\n  mode: internet\n  blockCidrs: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]\n  hostPorts: [%d]\n", port)
	if r := n.Do(t, "PUT", "/api/templates", map[string]string{"yaml": tpl}); r.Status != http.StatusOK {
		t.Fatalf("template = %d %s", r.Status, r.Body)
	}
	def := newSpace(t, n, "hdef")
	opened := nodetest.Name(t, n.Engine, "hopen")
	createSpace(t, n, opened, map[string]any{"template": "openhost", "memory": "128m"})
	lan := nodetest.Name(t, n.Engine, "hlan")
	createSpace(t, n, lan, map[string]any{"template": "lan", "memory": "128m"})

	if !reachPort(t, n, lan, first, port) {
		t.Fatal("a lan space cannot reach the host's server: the test itself is broken")
	}
	if reachPort(t, n, def, first, port) {
		t.Fatal("a default space reached a server on the host's public address")
	}
	if !reachPort(t, n, opened, first, port) {
		t.Fatal("a space cannot reach the host port its template opens")
	}
	if reachPort(t, n, opened, first, closed) {
		t.Fatal("a space reached a host port its template does not open")
	}

	// An address the host gets later is blocked within the poll.
	later := testNetAddr()
	for later == first {
		later = testNetAddr()
	}
	ip(t, "addr", "add", later+"/32", "dev", link)
	if !reachPort(t, n, lan, later, port) {
		t.Fatal("a lan space cannot reach the host's new address: the test itself is broken")
	}
	eventually(t, "the host's new address blocked", 20*time.Second, func() bool { return !reachPort(t, n, def, later, port) })
	if !reachPort(t, n, opened, later, port) {
		t.Fatal("the opened port is closed on the host's new address")
	}
}

// TestSpacesCannotReachEachOther: even lan spaces, which block nothing
// else, cannot open connections to other spaces; the host still can, and
// the isolation comes back when the engine restarts a space by itself.
func TestSpacesCannotReachEachOther(t *testing.T) {
	if err := engine.EgressSupported(); err != nil {
		t.Fatalf("network rules cannot be enforced here (%v): the tests run as root, as the node does", err)
	}
	n := nodetest.Start(t, nodetest.Options{})
	server := nodetest.Name(t, n.Engine, "isrv")
	createSpace(t, n, server, map[string]any{"template": "lan", "memory": "128m"})
	client1 := nodetest.Name(t, n.Engine, "icli")
	createSpace(t, n, client1, map[string]any{"template": "lan", "memory": "128m"})
	serve := "echo reachable > /tmp/index.html && httpd -p 8080 -h /tmp"
	if _, code := sh(t, n, server, serve); code != 0 {
		t.Fatal("could not start a server in the space")
	}
	addr := spaceIP(t, n, server)
	if !hostReaches(t, addr, 8080) {
		t.Fatal("the host cannot reach the server in the space: the test itself is broken")
	}
	if reachPort(t, n, client1, addr, 8080) {
		t.Fatal("a space reached a server in another space")
	}
	// A default space neither (its block list covers the bridge anyway).
	if reachPort(t, n, newSpace(t, n, "idef"), addr, 8080) {
		t.Fatal("a default space reached a server in another space")
	}

	if _, err := n.Raw().ContainerRestart(context.Background(), "clawdspace-"+server, client.ContainerRestartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, code := sh(t, n, server, serve); code != 0 {
		t.Fatal("could not start the server again")
	}
	addr = spaceIP(t, n, server)
	if !hostReaches(t, addr, 8080) {
		t.Fatal("the host cannot reach the server after the restart")
	}
	eventually(t, "isolation back after an engine restart", 20*time.Second, func() bool { return !reachPort(t, n, client1, addr, 8080) })
}
