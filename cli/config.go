package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Config is where the CLI finds its nodes and key. Each value comes from
// the environment, else the config file, else the older CLI's ~/.clawdspace.
type Config struct {
	Key       string
	KeySource string

	// Hosts are the known nodes: names, hosts, host:port, URLs, or
	// name=URL pairs.
	Hosts       []string
	HostsSource string

	// Server is the default node for commands that do not name a space.
	Server       string
	ServerSource string

	// File is the config file (it may not exist); LegacyFile the older
	// CLI's file; CacheFile keeps node discovery for a short while.
	File       string
	LegacyFile string
	CacheFile  string

	// NoColor is set by NO_COLOR or TERM=dumb.
	NoColor bool
}

// Names of the settings, in the environment and in both files.
const (
	envKey    = "CLAWDSPACE_KEY"
	envHosts  = "CLAWDSPACE_HOSTS"
	envServer = "CLAWDSPACE_SERVER"
	envConfig = "CLAWDSPACE_CONFIG"
)

// legacyAliases are names the older CLI's file used for the same settings.
func legacyAliases() map[string]string {
	return map[string]string{"API_KEY": envKey, "KNOWN_HOSTS": envHosts, "CLAWDSPACE_URL": envServer}
}

// LoadConfig reads the configuration. getenv is os.Getenv outside tests.
func LoadConfig(getenv func(string) string) (*Config, error) {
	home := getenv("HOME")
	if home == "" && runtime.GOOS == "windows" {
		home = getenv("USERPROFILE")
	}
	c := &Config{
		File:      configPath(getenv, home),
		CacheFile: cachePath(getenv, home),
		NoColor:   getenv("NO_COLOR") != "" || getenv("TERM") == "dumb",
	}
	if home != "" {
		c.LegacyFile = filepath.Join(home, ".clawdspace")
	}
	type layer struct {
		name string
		get  func(string) string
	}
	layers := []layer{{"$", getenv}}
	for _, f := range []struct {
		path   string
		legacy bool
	}{{c.File, false}, {c.LegacyFile, true}} {
		if f.path == "" {
			continue
		}
		vals, err := readEnvFile(f.path, f.legacy)
		if err != nil {
			return nil, err
		}
		if vals != nil {
			layers = append(layers, layer{f.path, func(k string) string { return vals[k] }})
		}
	}
	pick := func(key string) (string, string) {
		for _, l := range layers {
			if v := strings.TrimSpace(l.get(key)); v != "" {
				if l.name == "$" {
					return v, "$" + key
				}
				return v, l.name
			}
		}
		return "", ""
	}
	c.Key, c.KeySource = pick(envKey)
	var hosts string
	hosts, c.HostsSource = pick(envHosts)
	c.Hosts = splitHosts(hosts)
	c.Server, c.ServerSource = pick(envServer)
	return c, nil
}

func configPath(getenv func(string) string, home string) string {
	if p := getenv(envConfig); p != "" {
		return p
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "clawdspace", "config")
	}
	switch {
	case home == "":
		return ""
	case runtime.GOOS == "darwin":
		return filepath.Join(home, "Library", "Application Support", "clawdspace", "config")
	case runtime.GOOS == "windows" && getenv("AppData") != "":
		return filepath.Join(getenv("AppData"), "clawdspace", "config")
	}
	return filepath.Join(home, ".config", "clawdspace", "config")
}

func cachePath(getenv func(string) string, home string) string {
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "clawdspace", "nodes.json")
	}
	switch {
	case home == "":
		return ""
	case runtime.GOOS == "darwin":
		return filepath.Join(home, "Library", "Caches", "clawdspace", "nodes.json")
	case runtime.GOOS == "windows" && getenv("LocalAppData") != "":
		return filepath.Join(getenv("LocalAppData"), "clawdspace", "nodes.json")
	}
	return filepath.Join(home, ".cache", "clawdspace", "nodes.json")
}

// splitHosts splits a host list on spaces and commas (the older CLI used
// spaces, the node's CLAWDSPACE_NODES commas).
func splitHosts(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// readEnvFile reads KEY=VALUE lines as the older CLI's sourced shell file
// held them: blank lines and # comments are skipped, "export " is allowed,
// values may be quoted, anything else is ignored. A missing file gives nil.
// With legacy, the older names (API_KEY, KNOWN_HOSTS, CLAWDSPACE_URL) count
// too, below the current ones.
func readEnvFile(path string, legacy bool) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	vals := parseEnvFile(b)
	if legacy {
		for old, cur := range legacyAliases() {
			if v, ok := vals[old]; ok && vals[cur] == "" {
				vals[cur] = v
			}
		}
	}
	return vals, nil
}

func parseEnvFile(b []byte) map[string]string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || !isEnvName(k) {
			continue
		}
		vals[k] = unquote(v)
	}
	return vals
}

func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// unquote reads a value as a shell reads one word: 'single' quotes keep
// everything, "double" quotes unescape \" \\ \$ and \`, a backslash outside
// quotes escapes the next character, and unquoted whitespace ends the value
// (what follows, such as a # comment, is ignored).
func unquote(v string) string {
	v = strings.TrimSpace(v)
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				sb.WriteString(v[i+1:])
				return sb.String()
			}
			sb.WriteString(v[i+1 : i+1+j])
			i += j + 1
		case '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				sb.WriteByte(v[i])
			}
		case '\\':
			if i+1 < len(v) {
				i++
				sb.WriteByte(v[i])
			}
		case ' ', '\t':
			return sb.String()
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// quoteEnvValue quotes v for a KEY=VALUE file that a shell could source too.
func quoteEnvValue(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// MaskKey shows enough of a key to recognise it and never all of it.
func MaskKey(k string) string {
	switch {
	case k == "":
		return "(not set)"
	case len(k) < 12:
		return strings.Repeat("*", len(k))
	}
	return k[:4] + "…" + k[len(k)-4:] + fmt.Sprintf(" (%d characters)", len(k))
}

// setConfigValue writes KEY=VALUE into the config file at path, replacing
// the line that sets KEY, and keeps the file private (0600).
func setConfigValue(path, key, value string) error {
	if path == "" {
		return errors.New("no config file location: set HOME or CLAWDSPACE_CONFIG")
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	var out []string
	done := false
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if k, _, ok := strings.Cut(t, "="); ok && strings.TrimSpace(k) == key {
			if !done && value != "" {
				out = append(out, key+"="+quoteEnvValue(value))
			}
			done = true
			continue
		}
		if line != "" || len(out) > 0 {
			out = append(out, line)
		}
	}
	if !done && value != "" {
		out = append(out, key+"="+quoteEnvValue(value))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating config folder: %w", err)
	}
	tmp := path + ".tmp"
	data := strings.Join(out, "\n")
	if data != "" {
		data += "\n"
	}
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}
