package cli

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/adam91holt/clawdspace/api"
)

// StatsOptions are the settings of `clawdspace stats`.
type StatsOptions struct {
	IO     *IO
	Spaces spaceFinder

	Name   string
	Server string
	JSON   bool
}

// NewCmdStats builds `clawdspace stats`.
func NewCmdStats(d *Deps, runF func(*StatsOptions) error) *cobra.Command {
	o := &StatsOptions{IO: d.IO}
	cmd := &cobra.Command{
		Use:     "stats NAME",
		Short:   "Show a space's resource usage (one sample, about a second)",
		Example: "  clawdspace stats dev\n  clawdspace stats dev --json | jq .memoryUsageBytes",
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
			return statsRun(cmd.Context(), o)
		},
	}
	addServerFlag(cmd, &o.Server)
	addJSONFlag(cmd, &o.JSON)
	return cmd
}

func statsRun(ctx context.Context, o *StatsOptions) error {
	c, err := o.Spaces.FindSpace(ctx, o.Server, o.Name)
	if err != nil {
		return err
	}
	var out struct {
		Stats rawObject `json:"stats"`
	}
	if err := c.Do(ctx, http.MethodGet, spacePath(o.Name, "/stats"), nil, nil, &out); err != nil {
		return spaceError(o.Name, c, err)
	}
	if o.JSON {
		if out.Stats == nil {
			out.Stats = rawObject{}
		}
		return writeJSON(o.IO.Out, out.Stats)
	}
	s := decodeAs[api.Stats](out.Stats)
	used, limit := float64(s.MemoryUsageBytes), float64(s.MemoryLimitBytes)
	mem := humanBytes(used)
	if limit > 0 {
		mem = fmt.Sprintf("%s / %s (%.1f%%)", mem, humanBytes(limit), 100*used/limit)
	}
	rows := [][]string{
		{"Space:", fmt.Sprintf("%s (on %s)", o.Name, c.Name)},
		{"CPU:", fmt.Sprintf("%.1f%%", s.CPUPercent)},
		{"Memory:", mem},
		{"Processes:", fmt.Sprint(s.PIDs)},
		{"Network:", fmt.Sprintf("%s in, %s out", humanBytes(float64(s.NetworkRxBytes)), humanBytes(float64(s.NetworkTxBytes)))},
		{"Disk I/O:", fmt.Sprintf("%s read, %s written", humanBytes(float64(s.BlockReadBytes)), humanBytes(float64(s.BlockWriteBytes)))},
	}
	return (&printer{out: o.IO.Out}).table(rows)
}
