package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	JSON   bool
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
	p := o.Printer
	rows := [][]string{p.header([]string{"NAME", "NODE", "STATUS", "CPUS", "MEMORY", "TEMPLATE", "IMAGE", "ACTIVE"}, 2)}
	now := o.Now()
	for i, c := range clients {
		for _, raw := range spaces[i] {
			s := decodeAs[api.Space](raw)
			cpus := formatCPUs(s.CPUs)
			if s.GPU {
				cpus += " +GPU"
			}
			rows = append(rows, []string{s.Name, c.Name, p.status(s.Status), cpus, humanBytes(float64(s.Memory)),
				orDash(s.Template), s.Image, ago(now, s.LastActivity)})
		}
	}
	if len(rows) == 1 {
		_, err := fmt.Fprintln(o.IO.Out, "No spaces. Create one with: clawdspace create NAME")
		return err
	}
	return p.table(rows)
}
