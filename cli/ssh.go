package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/spaces"
)

// SSHProxyOptions are the settings of `clawdspace ssh-proxy`.
type SSHProxyOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name   string
	Server string
}

// NewCmdSSHProxy builds `clawdspace ssh-proxy`: the ProxyCommand that
// carries an SSH connection over a node's /api/ssh.
func NewCmdSSHProxy(d *Deps, runF func(*SSHProxyOptions) error) *cobra.Command {
	o := &SSHProxyOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "ssh-proxy SPACE",
		Short: "Carry an SSH connection to a space over the node's API (an ssh ProxyCommand)",
		Long: `Bridge stdin and stdout to the SSH server of the node that holds SPACE, through the node's
/api/ssh WebSocket with this CLI's key and servers, for machines that cannot reach the node's SSH
port (not on the tailnet). Use it as ssh's ProxyCommand; clawdspace ssh-config writes the entry.
See docs/SSH.md.`,
		Example: "  ssh -o ProxyCommand='clawdspace ssh-proxy dev' dev@dev.clawdspace\n  clawdspace ssh-config dev >> ~/.ssh/config && ssh dev.clawdspace",
		Args:    exactArgs("SPACE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces = fl
			if runF != nil {
				return runF(o)
			}
			return sshProxyRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	return cmd
}

// sshTunnelURL is the WebSocket address of a node's SSH tunnel.
func sshTunnelURL(base string) string {
	u := strings.TrimRight(base, "/") + "/api/ssh"
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	return "ws://" + strings.TrimPrefix(u, "http://")
}

func sshProxyRun(ctx context.Context, o *SSHProxyOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	h := http.Header{}
	if c.Key != "" {
		h.Set("Authorization", "Bearer "+c.Key)
	}
	if c.Via != "" {
		h.Set(headerNode, c.Via)
	}
	ws, resp, err := websocket.Dial(ctx, sshTunnelURL(c.BaseURL), &websocket.DialOptions{HTTPClient: c.HTTP, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			apiErr := c.readError(resp)
			if IsNotFound(apiErr) {
				return fmt.Errorf("%s does not serve SSH over its API (GET /api/ssh answered 404)", c.label())
			}
			return apiErr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{URL: c.BaseURL, Err: err}
	}
	ws.SetReadLimit(-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	defer conn.Close()
	// Both ways until either ends: ssh closes our stdin when it is done,
	// and the node closes the socket when the connection ends.
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(conn, o.IO.In)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(o.IO.Out, conn)
		done <- struct{}{}
	}()
	<-done
	return nil
}

// SSHConfigOptions are the settings of `clawdspace ssh-config`.
type SSHConfigOptions struct {
	IO     *IO
	Spaces spaceFinder
	Nodes  nodeLister

	Names  []string
	Server string
	// Proxy always writes a ProxyCommand; Direct never does.
	Proxy, Direct bool
	// Port is the node's SSH port on the tailnet (default 22).
	Port int
	// Program is how ProxyCommand runs this CLI.
	Program string
}

// NewCmdSSHConfig builds `clawdspace ssh-config`.
func NewCmdSSHConfig(d *Deps, runF func(*SSHConfigOptions) error) *cobra.Command {
	o := &SSHConfigOptions{IO: d.IO, Program: "clawdspace"}
	// The ProxyCommand runs this very binary, wherever it is installed.
	if exe, err := os.Executable(); err == nil && !strings.ContainsAny(exe, " \t'\"\\") {
		o.Program = exe
	}
	cmd := &cobra.Command{
		Use:   "ssh-config [SPACE...]",
		Short: "Print ~/.ssh/config entries for spaces (ssh SPACE.clawdspace, VS Code Remote-SSH)",
		Long: `Print a ~/.ssh/config entry per space (every space of the nodes this CLI knows when none is
named): Host SPACE.clawdspace, User SPACE, and either HostName the node's tailnet address (when this
CLI reaches the node on the tailnet: a 100.64.0.0/10 or fd7a:115c:a1e0::/48 address, or a *.ts.net
name) or ProxyCommand clawdspace ssh-proxy SPACE, which carries SSH over the node's API with this
CLI's key. HostKeyAlias names the node, so its host key is checked once for all its spaces.
See docs/SSH.md.`,
		Example: "  clawdspace ssh-config dev >> ~/.ssh/config\n  ssh dev.clawdspace\n  clawdspace ssh-config --proxy",
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Proxy && o.Direct {
				return usageErrorf("--proxy and --direct exclude each other")
			}
			if o.Port < 1 || o.Port > 65535 {
				return usageErrorf("--port must be between 1 and 65535")
			}
			o.Names = args
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Spaces, o.Nodes = fl, fl
			if runF != nil {
				return runF(o)
			}
			return sshConfigRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	cmd.Flags().BoolVar(&o.Proxy, "proxy", false, "always connect through the API (ProxyCommand clawdspace ssh-proxy)")
	cmd.Flags().BoolVar(&o.Direct, "direct", false, "always connect to the node's SSH port (HostName), never through the API")
	cmd.Flags().IntVar(&o.Port, "port", 22, "the nodes' SSH port on the tailnet")
	return cmd
}

// sshEntry is one space and the node that holds it.
type sshEntry struct {
	space string
	c     *Client
}

func sshConfigRun(ctx context.Context, o *SSHConfigOptions) error {
	var entries []sshEntry
	if len(o.Names) > 0 {
		for _, name := range o.Names {
			if err := spaces.ValidateName(name); err != nil {
				return usageErrorf("bad space name %q: %s", name, ErrorMessage(err))
			}
			c, err := o.Spaces.FindSpace(ctx, o.Server, name)
			if err != nil {
				return err
			}
			entries = append(entries, sshEntry{space: name, c: c})
		}
	} else {
		var err error
		if entries, err = allSpaces(ctx, o); err != nil {
			return err
		}
		if len(entries) == 0 {
			return errors.New("no spaces: create one first (clawdspace create NAME)")
		}
	}
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(o.IO.Out)
		}
		fmt.Fprint(o.IO.Out, sshConfigBlock(e, o))
	}
	return nil
}

// allSpaces lists the spaces of every node that answers (or of --server).
func allSpaces(ctx context.Context, o *SSHConfigOptions) ([]sshEntry, error) {
	clients, down, err := clientsFor(ctx, o.Nodes, o.Server)
	if err != nil {
		return nil, err
	}
	for _, why := range down {
		fmt.Fprintf(o.IO.ErrOut, "warning: %s\n", why)
	}
	lists := make([][]sshEntry, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			var out struct {
				Spaces []struct {
					Name string `json:"name"`
				} `json:"spaces"`
			}
			if errs[i] = c.Do(ctx, http.MethodGet, "/spaces", nil, nil, &out); errs[i] != nil {
				return
			}
			for _, s := range out.Spaces {
				// A name goes into ~/.ssh/config and a ProxyCommand: only
				// a valid one, whatever a node answers.
				if spaces.ValidateName(s.Name) != nil {
					continue
				}
				lists[i] = append(lists[i], sshEntry{space: s.Name, c: c})
			}
		})
	}
	wg.Wait()
	var all []sshEntry
	for i := range clients {
		if errs[i] != nil {
			fmt.Fprintf(o.IO.ErrOut, "warning: %s: %v\n", clients[i].label(), errs[i])
			continue
		}
		all = append(all, lists[i]...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a].space < all[b].space })
	return all, nil
}

// sshConfigBlock is the ~/.ssh/config entry of one space.
func sshConfigBlock(e sshEntry, o *SSHConfigOptions) string {
	var b strings.Builder
	node := e.c.Via
	if node == "" {
		node = e.c.Name
	}
	host := nodeHost(e.c.BaseURL)
	direct := !o.Proxy && (o.Direct || (e.c.Via == "" && onTailnet(host)))
	fmt.Fprintf(&b, "# Clawdspace: space %s on node %s (docs/SSH.md)\n", e.space, aliasSafe(node))
	fmt.Fprintf(&b, "Host %s.clawdspace\n", e.space)
	fmt.Fprintf(&b, "  User %s\n", e.space)
	if direct {
		fmt.Fprintf(&b, "  HostName %s\n", host)
		if o.Port != 22 {
			fmt.Fprintf(&b, "  Port %d\n", o.Port)
		}
	} else {
		// ssh needs a HostName even when the proxy ignores it.
		fmt.Fprintf(&b, "  HostName %s\n", host)
		args := []string{shellQuote(o.Program), "ssh-proxy"}
		if o.Server != "" {
			args = append(args, "--server", shellQuote(o.Server))
		}
		args = append(args, e.space)
		fmt.Fprintf(&b, "  ProxyCommand %s\n", strings.Join(args, " "))
	}
	fmt.Fprintf(&b, "  HostKeyAlias clawdspace-%s\n", aliasSafe(node))
	// Editors and agents keep connections open for hours; keepalives find
	// a dead one.
	b.WriteString("  ServerAliveInterval 30\n")
	return b.String()
}

// nodeHost is the host part of a node's URL.
func nodeHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.Hostname()
}

// onTailnet reports whether host is a tailnet address or MagicDNS name.
func onTailnet(host string) bool {
	if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(host), "."), ".ts.net") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || netip.MustParsePrefix("fd7a:115c:a1e0::/48").Contains(ip)
}

// aliasSafe keeps the characters a HostKeyAlias may have.
func aliasSafe(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

// shellQuote quotes s for the shell that runs a ProxyCommand.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._:/@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
