package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// AuditOptions are the settings of `clawdspace audit`.
type AuditOptions struct {
	IO      *IO
	Printer *printer
	Nodes   targeter

	Server   string
	Space    string
	Limit    int
	Follow   bool
	Interval time.Duration
	JSON     bool
}

// NewCmdAudit builds `clawdspace audit`.
func NewCmdAudit(d *Deps, runF func(*AuditOptions) error) *cobra.Command {
	o := &AuditOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show a node's audit log: who did what to which space",
		Long: `Show the newest audit events of a node, oldest first. --follow keeps printing new
events as they are recorded (polling), until interrupted. With --json the events are
a JSON array, or one JSON object per line with --follow.`,
		Example: `  clawdspace audit --space dev --limit 20
  clawdspace audit --follow
  clawdspace audit --json | jq -r '.[] | select(.type=="space.exec") | .meta.command'`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 1 || o.Limit > 1000 {
				return usageErrorf("--limit must be between 1 and 1000")
			}
			if o.Interval < 100*time.Millisecond {
				return usageErrorf("--interval must be at least 100ms")
			}
			fl, err := newFleet(d)
			if err != nil {
				return err
			}
			o.Nodes, o.Printer = fl, newPrinter(d.IO, fl.cfg)
			if runF != nil {
				return runF(o)
			}
			return auditRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	cmd.Flags().StringVar(&o.Space, "space", "", "only events of this space")
	cmd.Flags().IntVarP(&o.Limit, "limit", "l", 50, "how many of the newest events to show (1-1000)")
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "how often --follow asks the node")
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func fetchAudit(ctx context.Context, c *Client, space string, limit int) ([]rawObject, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if space != "" {
		q.Set("space", space)
	}
	var out struct {
		Events []rawObject `json:"events"`
	}
	if err := c.Do(ctx, http.MethodGet, "/audit", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

func auditRun(ctx context.Context, o *AuditOptions) error {
	c, err := o.Nodes.Target(ctx, o.Server)
	if err != nil {
		return err
	}
	events, err := fetchAudit(ctx, c, o.Space, o.Limit)
	if err != nil {
		return err
	}
	if !o.Follow {
		if o.JSON {
			if events == nil {
				events = []rawObject{}
			}
			return writeJSON(o.IO.Out, events)
		}
		if len(events) == 0 {
			_, err := fmt.Fprintln(o.IO.ErrOut, "No audit events.")
			return err
		}
		return o.printEvents(events, true)
	}

	// Follow: print what is there, then every event newer than the last
	// one printed. Events are ordered by id; ts may go backwards (ingested
	// shell history carries the command's own time).
	var last api.Event
	header := true
	show := func(evs []rawObject) error {
		var fresh []rawObject
		for _, raw := range evs {
			e := decodeAs[api.Event](raw)
			if newer(e, last) {
				fresh = append(fresh, raw)
				last = e
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		if o.JSON {
			enc := json.NewEncoder(o.IO.Out)
			enc.SetEscapeHTML(false)
			for _, e := range fresh {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			return nil
		}
		err := o.printEvents(fresh, header)
		header = false
		return err
	}
	if err := show(events); err != nil {
		return err
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		evs, err := fetchAudit(ctx, c, o.Space, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := show(evs); err != nil {
			return err
		}
	}
}

// newer says whether e comes after last: by id, or by time for a node that
// sends no ids.
func newer(e, last api.Event) bool {
	if e.ID != 0 || last.ID != 0 {
		return e.ID > last.ID
	}
	return e.TS > last.TS
}

func (o *AuditOptions) printEvents(events []rawObject, header bool) error {
	var rows [][]string
	if header {
		rows = append(rows, []string{"TIME", "TYPE", "SPACE", "ACTOR", "DETAILS"})
	}
	for _, raw := range events {
		e := decodeAs[api.Event](raw)
		ts := e.TS
		if t, err := time.Parse(time.RFC3339Nano, e.TS); err == nil {
			ts = t.Local().Format("2006-01-02 15:04:05")
		}
		actor := orDash(e.Actor)
		if e.Source == "space" {
			actor += " (reported by the space)"
		}
		rows = append(rows, []string{ts, e.Type, orDash(e.Space), actor, formatMeta(e.Meta)})
	}
	return o.Printer.table(rows)
}

// formatMeta prints an event's meta as sorted key=value pairs on one line.
func formatMeta(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
			if strings.ContainsAny(v, " \t\n\"") || v == "" {
				v = strconv.Quote(v)
			}
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
