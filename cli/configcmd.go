package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// ConfigOptions are the settings of `clawdspace config`.
type ConfigOptions struct {
	IO     *IO
	Config *Config
	// Cached reads the cached discovery without asking any node.
	Cached func() []Node

	JSON bool
}

// NewCmdConfig builds `clawdspace config` and `clawdspace config set`.
func NewCmdConfig(d *Deps, runF func(*ConfigOptions) error) *cobra.Command {
	o := &ConfigOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show where the configuration comes from and what is set (the key masked)",
		Long: `Show the configuration: the API key (masked), the known nodes and the default node,
each with where it comes from. Each setting is read from the environment
(CLAWDSPACE_KEY, CLAWDSPACE_HOSTS, CLAWDSPACE_SERVER), else the config file, else the
older CLI's ~/.clawdspace (KEY=VALUE lines, as a shell would source them).`,
		Example: `  clawdspace config
  clawdspace config set hosts "laptop 100.64.0.2 gpu=http://100.64.0.3:7777"
  clawdspace config set key -      # reads the key from stdin, without echo on a terminal`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Config = fl.cfg
			o.Cached = func() []Node {
				if c, ok := fl.readCache(); ok {
					return c.Nodes
				}
				return nil
			}
			if runF != nil {
				return runF(o)
			}
			return configRun(cmd.Context(), o)
		},
	}
	addJSONFlag(cmd, &o.JSON)
	cmd.AddCommand(newCmdConfigSet(d))
	return cmd
}

// configView is what `config --json` prints.
type configView struct {
	ConfigFile   string   `json:"configFile"`
	LegacyFile   string   `json:"legacyFile"`
	CacheFile    string   `json:"cacheFile"`
	Key          string   `json:"key"`
	KeySource    string   `json:"keySource,omitempty"`
	Hosts        []string `json:"hosts"`
	HostsSource  string   `json:"hostsSource,omitempty"`
	Server       string   `json:"server,omitempty"`
	ServerSource string   `json:"serverSource,omitempty"`
	Nodes        []Node   `json:"cachedNodes"`
}

func configRun(_ context.Context, o *ConfigOptions) error {
	c := o.Config
	v := configView{
		ConfigFile: c.File, LegacyFile: c.LegacyFile, CacheFile: c.CacheFile,
		Key: MaskKey(c.Key), KeySource: c.KeySource,
		Hosts: append([]string{}, c.Hosts...), HostsSource: c.HostsSource,
		Server: c.Server, ServerSource: c.ServerSource, Nodes: o.Cached(),
	}
	if v.Nodes == nil {
		v.Nodes = []Node{}
	}
	if o.JSON {
		return writeJSON(o.IO.Out, v)
	}
	src := func(s string) string {
		if s == "" {
			return ""
		}
		if strings.HasPrefix(s, "$") {
			return "  (from the environment, " + s + ")"
		}
		return "  (from " + s + ")"
	}
	hosts := strings.Join(c.Hosts, " ")
	if hosts == "" {
		hosts = "(not set: 127.0.0.1:7777)"
	}
	server := c.Server
	if server == "" {
		server = "(not set: the first node that answers)"
	}
	rows := [][]string{
		{"Config file:", exists(c.File)},
		{"Older CLI file:", exists(c.LegacyFile)},
		{"Cache file:", c.CacheFile},
		{"API key:", v.Key + src(c.KeySource)},
		{"Hosts:", hosts + src(c.HostsSource)},
		{"Default server:", server + src(c.ServerSource)},
	}
	if err := (&printer{out: o.IO.Out}).table(rows); err != nil {
		return err
	}
	fmt.Fprintln(o.IO.Out)
	if len(v.Nodes) == 0 {
		_, err := fmt.Fprintln(o.IO.Out, "Discovered nodes: none cached (run 'clawdspace servers')")
		return err
	}
	fmt.Fprintln(o.IO.Out, "Discovered nodes (cached):")
	for _, n := range v.Nodes {
		state := "online"
		if !n.Online {
			state = "offline"
		}
		fmt.Fprintf(o.IO.Out, "  %s: %s (%s)\n", n.Name, n.URL, state)
	}
	return nil
}

func exists(path string) string {
	if path == "" {
		return "(none)"
	}
	if _, err := os.Stat(path); err != nil {
		return path + " (does not exist)"
	}
	return path
}

// configSetting maps a name `config set` takes to the file's key.
func configSetting(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "key":
		return envKey, true
	case "hosts":
		return envHosts, true
	case "server":
		return envServer, true
	}
	return "", false
}

func newCmdConfigSet(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "set key|hosts|server VALUE",
		Short: "Write a setting into the config file (mode 0600); an empty VALUE removes it",
		Example: `  clawdspace config set server gpu-box
  clawdspace config set key -`,
		Args: exactArgs("SETTING", "VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, ok := configSetting(args[0])
			if !ok {
				return usageErrorf("unknown setting %q: use key, hosts or server", args[0])
			}
			value := args[1]
			if value == "-" {
				v, err := readSecret(d.IO, "Value: ")
				if err != nil {
					return fmt.Errorf("reading the value: %w", err)
				}
				value = v
			}
			cfg, err := d.Config()
			if err != nil {
				return err
			}
			if err := setConfigValue(cfg.File, key, value); err != nil {
				return err
			}
			shown := value
			if key == envKey {
				shown = MaskKey(value)
			}
			_, err = fmt.Fprintf(d.IO.Out, "Set %s = %s in %s\n", key, shown, cfg.File)
			return err
		},
	}
}
