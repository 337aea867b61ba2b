package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// ServersOptions are the settings of `clawdspace servers`.
type ServersOptions struct {
	IO      *IO
	Printer *printer
	Fleet   *Fleet

	Refresh bool
	JSON    bool
}

// NewCmdServers builds `clawdspace servers`.
func NewCmdServers(d *Deps, runF func(*ServersOptions) error) *cobra.Command {
	o := &ServersOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "servers",
		Short: "List the known nodes (from CLAWDSPACE_HOSTS) and whether they answer",
		Long: `List the known nodes: CLAWDSPACE_SERVER and CLAWDSPACE_HOSTS (127.0.0.1:7777 when
neither is set), plus the nodes they report in their fleet view. Discovery is cached
for 60 seconds; --refresh asks every node again.`,
		Example: "  clawdspace servers\n  clawdspace servers --refresh --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Fleet, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return serversRun(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Refresh, "refresh", "r", false, "discover the nodes again instead of using the cache")
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

// serverRow is one node in `servers --json`.
type serverRow struct {
	Name         string        `json:"name"`
	URL          string        `json:"url"`
	Status       string        `json:"status"`
	LatencyMs    *int64        `json:"latencyMs,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Error        string        `json:"error,omitempty"`
}

func serversRun(ctx context.Context, o *ServersOptions) error {
	nodes, err := o.Fleet.Nodes(ctx, o.Refresh)
	if err != nil {
		return err
	}
	var up []Node
	for _, n := range nodes {
		if n.Online {
			up = append(up, n)
		}
	}
	caps := map[string]nodeCaps{}
	for _, nc := range o.Fleet.capabilities(ctx, up) {
		caps[nc.Node.URL] = nc
	}
	rows := []serverRow{}
	for _, n := range nodes {
		r := serverRow{Name: n.Name, URL: n.URL, Status: "offline", Error: n.Error}
		if nc, ok := caps[n.URL]; ok {
			r.Status = "online"
			lat := nc.LatencyMs
			r.LatencyMs, r.Capabilities = &lat, nc.Caps
			if nc.Err != nil {
				r.Error = nc.Err.Error()
			}
		}
		rows = append(rows, r)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, rows)
	}
	p := o.Printer
	table := [][]string{p.header([]string{"NAME", "URL", "STATUS", "CPUS", "MEMORY", "ARCH", "GPU", "LATENCY"}, 2)}
	var problems []string
	for _, r := range rows {
		cpus, mem, arch, gpu, lat := "-", "-", "-", "-", "-"
		if c := r.Capabilities; c != nil {
			cpus, mem, arch, gpu = fmt.Sprint(c.CPUs), humanBytes(c.Memory), c.Arch, "no"
			if c.GPU {
				gpu = orDash(strings.TrimSpace(c.GPUName + " " + c.GPUMemory))
			}
		}
		if r.LatencyMs != nil {
			lat = fmt.Sprintf("%d ms", *r.LatencyMs)
		}
		table = append(table, []string{r.Name, r.URL, p.status(r.Status), cpus, mem, arch, gpu, lat})
		if r.Error != "" {
			problems = append(problems, r.Error)
		}
	}
	if err := p.table(table); err != nil {
		return err
	}
	for _, m := range problems {
		fmt.Fprintln(o.IO.ErrOut, "note:", m)
	}
	if len(up) == 0 {
		fmt.Fprintln(o.IO.ErrOut, "No node answers. Add nodes to CLAWDSPACE_HOSTS (see 'clawdspace config').")
	}
	return nil
}

// targeter reaches one node: the one named, or the default.
type targeter interface {
	Target(ctx context.Context, server string) (*Client, error)
}

// SystemOptions are the settings of `clawdspace system`.
type SystemOptions struct {
	IO    *IO
	Nodes targeter

	Server string
	JSON   bool
}

// NewCmdSystem builds `clawdspace system`.
func NewCmdSystem(d *Deps, runF func(*SystemOptions) error) *cobra.Command {
	o := &SystemOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:     "system",
		Short:   "Show a node's host: CPUs, load, memory, disk, engine",
		Example: "  clawdspace system\n  clawdspace system --server gpu-box --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes = fl
			if runF != nil {
				return runF(o)
			}
			return systemRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func systemRun(ctx context.Context, o *SystemOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var raw rawObject
	if err := c.Do(ctx, http.MethodGet, "/system", nil, nil, &raw); err != nil {
		return err
	}
	if o.JSON {
		raw["node"], raw["nodeUrl"] = c.Name, c.BaseURL
		return writeJSON(o.IO.Out, raw)
	}
	s := decodeAs[api.System](raw)
	rows := [][]string{
		{"Node:", fmt.Sprintf("%s (%s)", c.Name, c.BaseURL)},
		{"Hostname:", s.Hostname},
		{"Platform:", fmt.Sprintf("%s (%s)", s.Platform, s.Arch)},
		{"CPUs:", fmt.Sprint(s.CPUs)},
	}
	// An older node may send no load average.
	if la, _ := raw["loadAverage"].([]any); len(la) == 3 {
		rows = append(rows, []string{"Load:", fmt.Sprintf("%.2f %.2f %.2f", s.LoadAverage[0], s.LoadAverage[1], s.LoadAverage[2])})
	}
	rows = append(rows, []string{"Memory:", fmt.Sprintf("%s (%s / %s)", s.Memory.Percentage, s.Memory.Used, s.Memory.Total)})
	if s.Disk != nil {
		rows = append(rows, []string{"Disk:", fmt.Sprintf("%s (%s / %s)", s.Disk.Percentage, s.Disk.Used, s.Disk.Total)})
	}
	gpu := "none"
	if s.Capabilities.GPU {
		gpu = orDash(strings.TrimSpace(s.Capabilities.GPUName + " " + s.Capabilities.GPUMemory))
	}
	rows = append(rows,
		[]string{"GPU:", gpu},
		[]string{"Uptime:", formatUptime(s.Uptime)},
		[]string{"Engine:", fmt.Sprintf("Docker %s, %d running, %d paused, %d containers, %d images", s.Docker.Version,
			s.Docker.ContainersRunning, s.Docker.ContainersPaused, s.Docker.Containers, s.Docker.Images)},
	)
	return (&printer{out: o.IO.Out}).table(rows)
}

func formatUptime(sec float64) string {
	d := int64(sec)
	days, h, m := d/86400, d%86400/3600, d%3600/60
	if days > 0 {
		return fmt.Sprintf("%dd %dh %dm", days, h, m)
	}
	return fmt.Sprintf("%dh %dm", h, m)
}

// NodesOptions are the settings of `clawdspace nodes`.
type NodesOptions struct {
	IO      *IO
	Printer *printer
	Nodes   targeter

	Server string
	JSON   bool
}

// NewCmdNodes builds `clawdspace nodes`.
func NewCmdNodes(d *Deps, runF func(*NodesOptions) error) *cobra.Command {
	o := &NodesOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:     "nodes",
		Short:   "Show the fleet as a node sees it (GET /api/nodes)",
		Example: "  clawdspace nodes\n  clawdspace nodes --server 100.64.0.2 --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return nodesRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func nodesRun(ctx context.Context, o *NodesOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var out struct {
		Nodes []rawObject `json:"nodes"`
	}
	if err := c.Do(ctx, http.MethodGet, "/nodes", nil, nil, &out); err != nil {
		return err
	}
	if o.JSON {
		if out.Nodes == nil {
			out.Nodes = []rawObject{}
		}
		return writeJSON(o.IO.Out, out.Nodes)
	}
	p := o.Printer
	rows := [][]string{p.header([]string{"NAME", "URL", "STATUS", "LATENCY", "CPUS", "MEMORY", "GPU"}, 2)}
	for _, raw := range out.Nodes {
		n := decodeAs[api.Node](raw)
		name := n.Name
		if n.Self {
			name += " (this node)"
		}
		lat, cpus, mem, gpu := "-", "-", "-", "-"
		// An older node may leave out the latency.
		if _, ok := raw["latencyMs"]; ok {
			lat = fmt.Sprintf("%d ms", n.LatencyMs)
		}
		if cp := n.Capabilities; cp != nil {
			cpus, mem, gpu = fmt.Sprint(cp.CPUs), humanBytes(float64(cp.Memory)), "no"
			if cp.GPU {
				gpu = orDash(cp.GPUName)
			}
		}
		rows = append(rows, []string{name, n.URL, p.status(n.Status), lat, cpus, mem, gpu})
	}
	return p.table(rows)
}
