package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// nodePicker chooses the node of a new space.
type nodePicker interface {
	Target(ctx context.Context, server string) (*Client, error)
	GPUNode(ctx context.Context) (*Client, error)
}

// CreateOptions are the settings of `clawdspace create`.
type CreateOptions struct {
	IO      *IO
	Printer *printer
	Nodes   nodePicker
	Spaces  spaceFinder

	Name   string
	Server string
	// Node asks the node (Server's, or the default) to make the space on
	// another node of its fleet: a name, or "auto" for the one that fits.
	Node     string
	Template string
	Memory   string
	CPUs     float64
	GPU      bool
	Repo     string
	Branch   string
	Dest     string
	Token    string

	TokenStdin bool
	// From forks the space from a space or checkpoint (see fork).
	From string
	// MemorySet, CPUsSet and GPUSet say which resources were given: the
	// others are left to the template.
	MemorySet, CPUsSet, GPUSet bool
	JSON                       bool
}

// NewCmdCreate builds `clawdspace create`.
func NewCmdCreate(d *Deps, runF func(*CreateOptions) error) *cobra.Command {
	o := &CreateOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a space",
		Long: `Create a space on a node: --server names it; --gpu picks a node that has a GPU;
otherwise CLAWDSPACE_SERVER, else the first known node that answers. With --node the
node asked places the space in its fleet: on the node named, or with --node auto on
the one that fits (one with a GPU when one is wanted, else the most free memory).
Memory, CPUs and GPU come from the template unless given.`,
		Example: `  clawdspace create dev
  clawdspace create ml --gpu --memory 16g --cpus 4
  clawdspace create ci --node auto
  clawdspace create dev2 --from dev@before-migration
  clawdspace create app --repo https://github.com/me/app.git --branch main --dest src
  gh auth token | clawdspace create app --repo https://github.com/me/private.git --github-token-stdin`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			f := cmd.Flags()
			o.MemorySet, o.CPUsSet, o.GPUSet = f.Changed("memory"), f.Changed("cpus"), f.Changed("gpu")
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes, o.Spaces, o.Printer = fl, fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			if o.From != "" {
				if f.NFlag() > len(changedFlags(f, "from", "server", "json")) {
					return usageErrorf("--from takes its settings from its source: give only --server and --json with it")
				}
				return forkRun(cmd.Context(), &CheckpointOptions{IO: o.IO, Printer: o.Printer, Spaces: fl, Server: o.Server, JSON: o.JSON, From: o.From, New: o.Name})
			}
			return createRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	addServerFlag(cmd, &o.Server)
	f.StringVar(&o.From, "from", "", "fork the space from a space (NAME) or a checkpoint (NAME@CHECKPOINT), as fork does")
	f.StringVar(&o.Node, "node", "", "make the space on this node of the fleet, or auto for the one that fits")
	f.StringVarP(&o.Template, "template", "t", "", "template to start from (default: the node's default template)")
	f.StringVarP(&o.Memory, "memory", "m", "", "memory limit, e.g. 512m or 2g (default: the template's; 2g in the default template)")
	f.Float64VarP(&o.CPUs, "cpus", "c", 0, "CPU limit, e.g. 0.5 or 2 (default: the template's; 1 in the default template)")
	f.BoolVarP(&o.GPU, "gpu", "g", false, "give the space the node's GPUs; picks a node with a GPU unless --server is given")
	f.StringVar(&o.Repo, "repo", "", "git repository to clone into the workspace (https://... or user@host:path)")
	f.StringVar(&o.Branch, "branch", "", "branch or tag to clone (needs --repo)")
	f.StringVar(&o.Dest, "dest", "", "folder to clone into, relative to /workspace (needs --repo; default repo)")
	f.StringVar(&o.Token, "github-token", "", "GitHub token for a private repository, given to the space as GITHUB_TOKEN (prefer --github-token-stdin)")
	f.BoolVar(&o.TokenStdin, "github-token-stdin", false, "read the GitHub token from stdin (never echoed)")
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func createRun(ctx context.Context, o *CreateOptions) error {
	if o.TokenStdin && o.Token != "" {
		return usageErrorf("give --github-token or --github-token-stdin, not both")
	}
	if o.Repo == "" && (o.Branch != "" || o.Dest != "") {
		return usageErrorf("--branch and --dest need --repo")
	}
	if o.TokenStdin {
		tok, err := readSecret(o.IO, "GitHub token: ")
		if err != nil {
			return fmt.Errorf("reading the GitHub token: %w", err)
		}
		o.Token = tok
	}
	body := api.CreateSpace{Name: o.Name, Node: o.Node, Template: o.Template, RepoURL: o.Repo, RepoBranch: o.Branch, RepoDest: o.Dest}
	if o.MemorySet {
		body.Memory = api.FlexString(o.Memory)
	}
	if o.CPUsSet {
		body.CPUs = api.Number(o.CPUs)
	}
	if o.GPUSet {
		body.GPU = &o.GPU
	}
	if o.Token != "" {
		body.Env = map[string]string{"GITHUB_TOKEN": o.Token}
	}

	var c *Client
	var err error
	if o.Server == "" && o.GPU && o.Node == "" {
		c, err = o.Nodes.GPUNode(ctx)
	} else {
		c, err = o.Nodes.Target(ctx, o.Server)
	}
	if err != nil {
		return err
	}
	if o.IO.StderrTTY && !o.JSON {
		where := c.Name
		if o.Node != "" {
			where = o.Node + " (through " + c.Name + ")"
		}
		fmt.Fprintf(o.IO.ErrOut, "Creating space %s on %s...\n", o.Name, where)
	}
	var out struct {
		Space rawObject `json:"space"`
	}
	h, err := c.DoHeader(ctx, http.MethodPost, "/spaces", nil, body, &out)
	if err != nil {
		return err
	}
	// The node that made the space says so: with --node it may be
	// another one than c.
	node := c.Name
	if made := strings.ToLower(h.Get(headerNode)); made != "" && o.Node != "" {
		node = made
	}
	if o.JSON {
		out.Space["node"] = node
		if node == c.Name {
			out.Space["nodeUrl"] = c.BaseURL
		}
		return writeJSON(o.IO.Out, out.Space)
	}
	s := decodeAs[api.Space](out.Space)
	details := []string{o.Printer.status(s.Status), humanBytes(float64(s.Memory)), formatCPUs(s.CPUs) + " CPU"}
	if s.GPU {
		details = append(details, "GPU")
	}
	if s.Template != "" {
		details = append(details, "template "+s.Template)
	}
	_, err = fmt.Fprintf(o.IO.Out, "Created space %s on %s (%s)\n", s.Name, node, strings.Join(details, ", "))
	return err
}

// readSecret reads a secret: from the terminal without echo when stdin is
// one, else the whole of stdin with its line ending trimmed.
func readSecret(streams *IO, prompt string) (string, error) {
	if streams.StdinTTY && streams.Term != nil {
		b, err := streams.Term.ReadPassword(func() { fmt.Fprint(streams.ErrOut, prompt) })
		fmt.Fprintln(streams.ErrOut)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if streams.In == nil {
		return "", errors.New("no stdin")
	}
	b, err := io.ReadAll(io.LimitReader(streams.In, 64<<10))
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(s) == "" {
		return "", errors.New("stdin is empty")
	}
	return strings.TrimSpace(s), nil
}

// addServerFlag adds --server/-s.
func addServerFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "server", "s", "", "node to use: a name, host, host:port or URL (default: found automatically)")
}

// addJSONFlag adds --json.
func addJSONFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "json", false, "print JSON for scripts")
}

// changedFlags returns the names of the flags given among names.
func changedFlags(f interface{ Changed(string) bool }, names ...string) []string {
	var out []string
	for _, n := range names {
		if f.Changed(n) {
			out = append(out, n)
		}
	}
	return out
}
