package views

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/adam91holt/clawdspace/spaces"
)

// Bytes formats a size in binary units: "1.5 GiB".
func Bytes[T ~int64 | ~uint64 | ~int](n T) string {
	v := float64(n)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", int64(n))
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// Percent formats part of whole as "12%".
func Percent[T ~int64 | ~uint64](part, whole T) string {
	if whole == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.0f%%", float64(part)*100/float64(whole))
}

// Ratio is part/whole between 0 and 1, for meters.
func Ratio[T ~int64 | ~uint64](part, whole T) string {
	if whole == 0 {
		return "0"
	}
	return strconv.FormatFloat(min(1, float64(part)/float64(whole)), 'f', 3, 64)
}

// CPUs formats a CPU count: "1", "0.5".
func CPUs(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// Load formats a load average.
func Load(l float64) string { return strconv.FormatFloat(l, 'f', 2, 64) }

// Ago says how long before now t was: "just now", "5 min ago".
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < 90*time.Minute:
		return fmt.Sprintf("%d min ago", max(1, int(d.Round(time.Minute)/time.Minute)))
	case d < 36*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Round(time.Hour)/time.Hour))
	default:
		return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
	}
}

// ISO is a machine-readable time for <time datetime>.
func ISO(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// Stamp is a full, readable UTC time for titles and the audit log.
func Stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Clock is the time of day of t in UTC: "14:03:22 UTC".
func Clock(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }

// StatusIcon is a shape per status, so a status never rests on colour alone.
func StatusIcon(status string) string {
	switch status {
	case "running":
		return "▶"
	case "paused":
		return "⏸"
	case "stopped":
		return "■"
	}
	return "?"
}

// Title joins a page's title and the node's name.
func Title(c Chrome) string {
	parts := []string{}
	if c.Title != "" {
		parts = append(parts, c.Title)
	}
	if c.Node != "" {
		parts = append(parts, c.Node)
	}
	parts = append(parts, "Clawdspace")
	return strings.Join(parts, " · ")
}

// Q escapes a query parameter value.
func Q(s string) string { return url.QueryEscape(s) }

func itoa(n int) string { return strconv.Itoa(n) }

// workspaceRoot is where a space's files live; forms and links carry
// paths under it, and pages show them without it.
const workspaceRoot = spaces.WorkspacePath

// Shown is a path under /workspace as a person reads it: "/a/b" for
// "/workspace/a/b", "/" for the workspace itself. Only for display: a
// folder named workspace makes the short form ambiguous.
func Shown(abs string) string { return spaces.DisplayPath(abs) }

// textareaText starts a textarea's (or a pre's) content with a newline:
// HTML drops one newline right after the opening tag, which would cost a
// text that starts with one its first line.
func textareaText(s string) string { return "\n" + s }
