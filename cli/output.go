package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printer writes what a command shows: tables and colour for people, JSON
// for scripts.
type printer struct {
	out   io.Writer
	color bool
}

func newPrinter(io *IO, cfg *Config) *printer {
	return &printer{out: io.Out, color: io.StdoutTTY && (cfg == nil || !cfg.NoColor)}
}

// ANSI colours; every code has the same length, so a column whose cells
// are all wrapped stays aligned in a tabwriter.
const (
	colorRed     = "\x1b[31m"
	colorGreen   = "\x1b[32m"
	colorYellow  = "\x1b[33m"
	colorDefault = "\x1b[39m"
	colorReset   = "\x1b[0m"
)

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + colorReset
}

// statusColor paints a space or node status.
func (p *printer) status(s string) string {
	switch s {
	case "running", "online":
		return p.paint(colorGreen, s)
	case "paused":
		return p.paint(colorYellow, s)
	case "stopped", "offline":
		return p.paint(colorRed, s)
	}
	return p.paint(colorDefault, s)
}

// header is a table's first row; cells in coloured columns are wrapped in
// the default colour to keep the columns aligned.
func (p *printer) header(cells []string, colored ...int) []string {
	out := append([]string{}, cells...)
	for _, i := range colored {
		out[i] = p.paint(colorDefault, out[i])
	}
	return out
}

// table writes rows as aligned columns.
func (p *printer) table(rows [][]string) error {
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// humanBytes prints a byte count with binary units.
func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", int64(n))
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v := n / unit
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	if v >= 100 || v == float64(int64(v)) {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// formatCPUs prints a CPU count without trailing zeros.
func formatCPUs(c float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", c), "0"), ".")
}

// ago prints how long ago an ISO time was, "-" when it cannot be read.
func ago(now time.Time, iso string) string {
	t, err := time.Parse(time.RFC3339Nano, iso)
	if err != nil {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// orDash prints "-" for an empty cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
