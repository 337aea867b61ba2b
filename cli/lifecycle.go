package cli

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// LifecycleOptions are the settings of `stop`, `start` and `destroy`.
type LifecycleOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name   string
	Server string
	JSON   bool
	// Force and Volume are for destroy only.
	Force  bool
	Volume bool
}

// NewCmdStop builds `clawdspace stop`.
func NewCmdStop(d *Deps, runF func(*LifecycleOptions) error) *cobra.Command {
	return lifecycleCmd(d, runF, stopRun, "stop NAME", "Pause a space (its processes freeze, memory is kept)",
		"  clawdspace stop dev")
}

// NewCmdStart builds `clawdspace start`.
func NewCmdStart(d *Deps, runF func(*LifecycleOptions) error) *cobra.Command {
	return lifecycleCmd(d, runF, startRun, "start NAME", "Resume a paused or stopped space",
		"  clawdspace start dev")
}

// NewCmdDestroy builds `clawdspace destroy`.
func NewCmdDestroy(d *Deps, runF func(*LifecycleOptions) error) *cobra.Command {
	return lifecycleCmd(d, runF, destroyRun, "destroy NAME", "Remove a space (asks first unless -f; --volume removes its files too)",
		"  clawdspace destroy dev\n  clawdspace destroy -f --volume scratch")
}

func lifecycleCmd(d *Deps, runF func(*LifecycleOptions) error, run func(context.Context, *LifecycleOptions) error,
	use, short, example string) *cobra.Command {
	o := &LifecycleOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    exactArgs("NAME"),
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
			return run(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	if strings.HasPrefix(use, "destroy") {
		cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "do not ask for confirmation")
		cmd.Flags().BoolVar(&o.Volume, "volume", false, "also remove the space's volume (its /workspace files)")
	}
	return cmd
}

// lifecycleResult is what --json prints for stop, start and destroy.
type lifecycleResult struct {
	Name    string `json:"name"`
	Node    string `json:"node"`
	NodeURL string `json:"nodeUrl"`
	Message string `json:"message"`
}

func stopRun(ctx context.Context, o *LifecycleOptions) error {
	return lifecycleCall(ctx, o, http.MethodPost, "/stop", nil, "Paused")
}

func startRun(ctx context.Context, o *LifecycleOptions) error {
	return lifecycleCall(ctx, o, http.MethodPost, "/start", nil, "Started")
}

func destroyRun(ctx context.Context, o *LifecycleOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	if !o.Force {
		what := "space " + o.Name
		if o.Volume {
			what += " and its volume (all its files)"
		}
		ok, err := confirm(o.IO, fmt.Sprintf("Destroy %s on %s? [y/N] ", what, c.Name))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(o.IO.ErrOut, "Cancelled.")
			return ErrCancelled
		}
	}
	q := url.Values{"removeVolume": {fmt.Sprint(o.Volume)}}
	return lifecycleOn(ctx, c, o, http.MethodDelete, "", q, "Destroyed")
}

func lifecycleCall(ctx context.Context, o *LifecycleOptions, method, suffix string, q url.Values, done string) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	return lifecycleOn(ctx, c, o, method, suffix, q, done)
}

func lifecycleOn(ctx context.Context, c *Client, o *LifecycleOptions, method, suffix string, q url.Values, done string) error {
	var out api.Message
	if err := c.Do(ctx, method, spacePath(o.Name, suffix), q, nil, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		return writeJSON(o.IO.Out, lifecycleResult{Name: o.Name, Node: c.Name, NodeURL: c.BaseURL, Message: out.Message})
	}
	extra := ""
	if o.Volume {
		extra = " and its volume"
	}
	_, err := fmt.Fprintf(o.IO.Out, "%s %s%s (on %s)\n", done, o.Name, extra, c.Name)
	return err
}

// confirm asks a yes/no question on stderr and reads the answer from stdin.
func confirm(streams *IO, question string) (bool, error) {
	fmt.Fprint(streams.ErrOut, question)
	if streams.In == nil {
		fmt.Fprintln(streams.ErrOut)
		return false, nil
	}
	line, err := bufio.NewReader(streams.In).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(streams.ErrOut)
		return false, nil
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}
