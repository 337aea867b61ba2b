package cli

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// PortsOptions are the settings of `clawdspace ports` and its
// subcommands.
type PortsOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name     string
	Port     uint16
	NodePort int
	HTTPS    bool
	Server   string
	JSON     bool
}

// NewCmdPorts builds `clawdspace ports` (list) with `open` and `close`.
func NewCmdPorts(d *Deps, runF func(*PortsOptions) error) *cobra.Command {
	o := &PortsOptions{IO: d.IO}
	run := func(cmd *cobra.Command, f func(context.Context, *PortsOptions) error) error {
		fl, err := newFleet(d)
		if err != nil {
			return err
		}
		o.Spaces = fl
		if runF != nil {
			return runF(o)
		}
		return f(cmd.Context(), o)
	}
	cmd := &cobra.Command{
		Use:   "ports NAME",
		Short: "List a space's listening and forwarded ports; open and close forwards",
		Long: `List the TCP ports a space listens on and its forwarded ports, with their tailnet URLs.
A forwarded port is served on the node's tailnet address, to the people the tailnet
policy gives the ports grant (docs/PORTS.md). Without a tailnet, use clawdspace forward.`,
		Example: "  clawdspace ports dev\n  clawdspace ports open dev 3000\n  clawdspace ports open dev 8443 --https\n  clawdspace ports close dev 3000",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return run(cmd, portsListRun)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)

	open := &cobra.Command{
		Use:     "open NAME PORT",
		Short:   "Forward a space's port on the node's tailnet address",
		Example: "  clawdspace ports open dev 3000\n  clawdspace ports open dev 3000 --node-port 43000",
		Args:    exactArgs("NAME", "PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			p, err := parsePortArg(args[1])
			if err != nil {
				return err
			}
			o.Port = p
			return run(cmd, portsOpenRun)
		},
	}
	open.Flags().IntVar(&o.NodePort, "node-port", 0, "node port to serve it on (default: the node picks)")
	open.Flags().BoolVar(&o.HTTPS, "https", false, "serve it with the tailnet's certificate")
	addServerFlag(open, &o.Server)
	addJSONFlag(open, &o.JSON)

	closeCmd := &cobra.Command{
		Use:     "close NAME PORT",
		Short:   "Stop forwarding a space's port",
		Example: "  clawdspace ports close dev 3000",
		Args:    exactArgs("NAME", "PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			p, err := parsePortArg(args[1])
			if err != nil {
				return err
			}
			o.Port = p
			return run(cmd, portsCloseRun)
		},
	}
	addServerFlag(closeCmd, &o.Server)
	cmd.AddCommand(open, closeCmd)
	return cmd
}

func parsePortArg(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, usageErrorf("bad port %q: it must be a whole number between 1 and 65535", s)
	}
	return uint16(p), nil
}

func portsPath(name string, port uint16) string {
	if port == 0 {
		return spacePath(name, "/ports")
	}
	return spacePath(name, "/ports/"+strconv.Itoa(int(port)))
}

func portsListRun(ctx context.Context, o *PortsOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	var out api.Ports
	if err := c.Do(ctx, http.MethodGet, portsPath(o.Name, 0), nil, nil, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out)
	}
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tADDRESS\tFORWARD")
	forwards := map[uint16]api.Forward{}
	for _, f := range out.Forwards {
		forwards[f.Port] = f
	}
	listed := map[uint16]bool{}
	for _, l := range out.Listening {
		listed[l.Port] = true
		fmt.Fprintf(tw, "%d\t%s\t%s\n", l.Port, l.Address, forwardCell(forwards, l.Port))
	}
	for _, f := range out.Forwards {
		if !listed[f.Port] {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", f.Port, "(not listening)", forwardCell(forwards, f.Port))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !out.Detected {
		fmt.Fprintln(o.IO.ErrOut, "The space is not running: its listening ports are not known.")
	}
	if out.Note != "" {
		fmt.Fprintln(o.IO.ErrOut, out.Note)
	}
	return nil
}

// forwardCell is the FORWARD column of a port: its URL and state.
func forwardCell(fs map[uint16]api.Forward, port uint16) string {
	f, ok := fs[port]
	if !ok {
		return "-"
	}
	where := f.URL
	if where == "" {
		where = "node port " + strconv.Itoa(int(f.NodePort))
	}
	if f.State != api.ForwardServing {
		where += " (" + f.State
		if f.Error != "" {
			where += ": " + f.Error
		}
		where += ")"
	}
	return where
}

func portsOpenRun(ctx context.Context, o *PortsOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	var out api.ForwardAnswer
	body := api.OpenForward{Port: int(o.Port), NodePort: o.NodePort, HTTPS: o.HTTPS}
	if err := c.Do(ctx, http.MethodPost, portsPath(o.Name, 0), nil, body, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, out.Forward)
	}
	where := out.Forward.URL
	if where == "" {
		where = "node port " + strconv.Itoa(int(out.Forward.NodePort))
	}
	_, err = fmt.Fprintf(o.IO.Out, "Forwarded %s:%d to %s (on %s)\n", o.Name, o.Port, where, c.Name)
	return err
}

func portsCloseRun(ctx context.Context, o *PortsOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, http.MethodDelete, portsPath(o.Name, o.Port), nil, nil, nil); err != nil {
		return spaceError(o.Name, c, err)
	}
	_, err = fmt.Fprintf(o.IO.Out, "Stopped forwarding %s:%d (on %s)\n", o.Name, o.Port, c.Name)
	return err
}
