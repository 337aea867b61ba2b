package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// nodeLister reaches one named node or every node that answers.
type nodeLister interface {
	Target(ctx context.Context, server string) (*Client, error)
	// OnlineClients returns a client for each node that answers, and why
	// the others are left out.
	OnlineClients(ctx context.Context) ([]*Client, []string, error)
}

// ListOptions are the settings of `clawdspace list`.
type ListOptions struct {
	IO      *IO
	Printer *printer
	Nodes   nodeLister
	Now     func() time.Time

	Server string
	// All asks one node for the spaces of its whole fleet (?all=true),
	// instead of asking each node this CLI knows.
	All  bool
	JSON bool
}

// NewCmdList builds `clawdspace list`.
func NewCmdList(d *Deps, runF func(*ListOptions) error) *cobra.Command {
	o := &ListOptions{IO: d.IO, Now: d.now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the spaces of every node (or of one with --server)",
		Example: `  clawdspace list
  clawdspace ls --server gpu-box
  clawdspace list --all
  clawdspace list --json | jq -r '.[] | select(.status=="paused") | .name'`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return listRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	cmd.Flags().BoolVarP(&o.All, "all", "a", false, "ask one node (--server, or the first that answers) for the spaces of its whole fleet")
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

// OnlineClients returns a client for every node that answers, and the
// errors of those that do not.
func (f *Fleet) OnlineClients(ctx context.Context) ([]*Client, []string, error) {
	up, err := f.online(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Client, len(up))
	for i, n := range up {
		out[i] = f.client(n)
	}
	var down []string
	nodes, _ := f.Nodes(ctx, false)
	for _, n := range nodes {
		if !n.Online {
			down = append(down, n.Error)
		}
	}
	return out, down, nil
}

// clientsFor is the node server names, or every node that answers.
func clientsFor(ctx context.Context, n nodeLister, server string) ([]*Client, []string, error) {
	if server != "" {
		c, err := n.Target(ctx, server)
		if err != nil {
			return nil, nil, err
		}
		return []*Client{c}, nil, nil
	}
	return n.OnlineClients(ctx)
}

func listRun(ctx context.Context, o *ListOptions) error {
	if o.All {
		return listFleetRun(ctx, o)
	}
	clients, down, err := clientsFor(ctx, o.Nodes, o.Server)
	if err != nil {
		return err
	}
	for _, why := range down {
		fmt.Fprintf(o.IO.ErrOut, "warning: %s\n", why)
	}
	spaces := make([][]rawObject, len(clients))
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out struct {
				Spaces []rawObject `json:"spaces"`
			}
			errs[i] = c.Do(ctx, http.MethodGet, "/spaces", nil, nil, &out)
			spaces[i] = out.Spaces
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if len(clients) > 1 {
				fmt.Fprintf(o.IO.ErrOut, "warning: %v\n", err)
			}
			errs[i] = err
		}
	}
	if failed == len(clients) {
		return errors.Join(errs...)
	}

	if o.JSON {
		all := []rawObject{}
		for i, c := range clients {
			for _, s := range spaces[i] {
				s["node"], s["nodeUrl"] = c.Name, c.BaseURL
				all = append(all, s)
			}
		}
		return writeJSON(o.IO.Out, all)
	}
	var rows []listRow
	for i, c := range clients {
		for _, raw := range spaces[i] {
			rows = append(rows, listRow{node: c.Name, space: raw})
		}
	}
	return printList(o, rows)
}

// listRow is one space of a listing and the node that has it.
type listRow struct {
	node  string
	space rawObject
}

// printList prints a listing as a table.
func printList(o *ListOptions, list []listRow) error {
	p := o.Printer
	rows := [][]string{p.header([]string{"NAME", "NODE", "STATUS", "CPUS", "MEMORY", "TEMPLATE", "IMAGE", "ACTIVE"}, 2)}
	now := o.Now()
	for _, l := range list {
		s := decodeAs[api.Space](l.space)
		cpus := formatCPUs(s.CPUs)
		if s.GPU {
			cpus += " +GPU"
		}
		rows = append(rows, []string{s.Name, l.node, p.status(s.Status), cpus, humanBytes(float64(s.Memory)),
			orDash(s.Template), s.Image, ago(now, s.LastActivity)})
	}
	if len(rows) == 1 {
		_, err := fmt.Fprintln(o.IO.Out, "No spaces. Create one with: clawdspace create NAME")
		return err
	}
	return p.table(rows)
}

// listFleetRun is list --all: one node's list of its whole fleet, each
// space with its node, and a warning for each node that did not answer.
func listFleetRun(ctx context.Context, o *ListOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	var out struct {
		Spaces []rawObject     `json:"spaces"`
		Errors []api.NodeError `json:"errors"`
	}
	if err := c.Do(ctx, http.MethodGet, "/spaces", url.Values{"all": {"true"}}, nil, &out); err != nil {
		return err
	}
	for _, e := range out.Errors {
		fmt.Fprintf(o.IO.ErrOut, "warning: node %s: %s\n", e.Node, e.Error)
	}
	rows := make([]listRow, 0, len(out.Spaces))
	for _, s := range out.Spaces {
		node, _ := s["node"].(string)
		if node == "" {
			node = c.Name // a node without a fleet answers its own list
			s["node"] = node
		}
		rows = append(rows, listRow{node: node, space: s})
	}
	if o.JSON {
		all := make([]rawObject, 0, len(rows))
		for _, r := range rows {
			all = append(all, r.space)
		}
		return writeJSON(o.IO.Out, all)
	}
	return printList(o, rows)
}
