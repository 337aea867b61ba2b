package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// ErrNoBrowser says there is no browser to open.
var ErrNoBrowser = errors.New("no browser available")

// DashboardOptions are the settings of `clawdspace dashboard`.
type DashboardOptions struct {
	IO          *IO
	Nodes       targeter
	OpenBrowser func(string) error

	Server    string
	NoBrowser bool
	ShowKey   bool
	JSON      bool
}

// NewCmdDashboard builds `clawdspace dashboard`.
func NewCmdDashboard(d *Deps, runF func(*DashboardOptions) error) *cobra.Command {
	o := &DashboardOptions{IO: d.IO, OpenBrowser: d.OpenBrowser}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print a node's dashboard URL and open it in a browser when there is one",
		Long: `Print the dashboard URL of a node and open it in the browser ($BROWSER, else
open/xdg-open where a display is available). The browser gets the key as ?key=; the
printed URL has it only with --show-key.`,
		Example: "  clawdspace dashboard\n  clawdspace dashboard --server gpu-box --no-browser",
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
			return dashboardRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	cmd.Flags().BoolVar(&o.NoBrowser, "no-browser", false, "only print the URL")
	cmd.Flags().BoolVar(&o.ShowKey, "show-key", false, "print the URL with the key in it")
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func dashboardRun(ctx context.Context, o *DashboardOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	base := strings.TrimRight(c.BaseURL, "/") + "/"
	withKey := base
	if c.Key != "" {
		withKey += "?" + url.Values{"key": {c.Key}}.Encode()
	}
	shown := base
	if o.ShowKey {
		shown = withKey
	}
	opened := false
	if !o.NoBrowser && o.OpenBrowser != nil {
		opened = o.OpenBrowser(withKey) == nil
	}
	if o.JSON {
		return writeJSON(o.IO.Out, map[string]any{"url": shown, "node": c.Name, "opened": opened})
	}
	if _, err := fmt.Fprintln(o.IO.Out, shown); err != nil {
		return err
	}
	if opened {
		fmt.Fprintln(o.IO.ErrOut, "Opened in your browser.")
	}
	return nil
}

// SystemBrowser returns a function that opens a URL in the user's browser:
// $BROWSER, else open (macOS), else xdg-open where a display is available.
// It waits a moment for the opener to finish (xdg-open and open return at
// once), not for a browser that stays in the foreground.
func SystemBrowser(getenv func(string) string) func(string) error {
	return func(u string) error {
		var argv []string
		switch {
		case getenv("BROWSER") != "":
			argv = append(strings.Fields(getenv("BROWSER")), u)
		case runtime.GOOS == "darwin":
			argv = []string{"open", u}
		case runtime.GOOS == "windows":
			argv = []string{"rundll32", "url.dll,FileProtocolHandler", u}
		case getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != "":
			argv = []string{"xdg-open", u}
		default:
			return ErrNoBrowser
		}
		path, err := exec.LookPath(argv[0])
		if err != nil {
			return ErrNoBrowser
		}
		cmd := exec.Command(path, argv[1:]...)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", argv[0], err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("%s: %w", argv[0], err)
			}
		case <-time.After(3 * time.Second):
		}
		return nil
	}
}

// NewCmdVersion builds `clawdspace version`.
func NewCmdVersion(d *Deps) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(d.IO.Out, map[string]string{"version": d.Version, "go": runtime.Version(),
					"os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			_, err := fmt.Fprintln(d.IO.Out, "clawdspace", d.Version)
			return err
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
