package cli

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
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

type spaceStats struct {
	CPUPercent       float64 `json:"cpuPercent"`
	MemoryUsageBytes float64 `json:"memoryUsageBytes"`
	MemoryLimitBytes float64 `json:"memoryLimitBytes"`
	Pids             int64   `json:"pids"`
	NetworkRxBytes   float64 `json:"networkRxBytes"`
	NetworkTxBytes   float64 `json:"networkTxBytes"`
	BlockReadBytes   float64 `json:"blockReadBytes"`
	BlockWriteBytes  float64 `json:"blockWriteBytes"`
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
	s := decodeAs[spaceStats](out.Stats)
	mem := humanBytes(s.MemoryUsageBytes)
	if s.MemoryLimitBytes > 0 {
		mem = fmt.Sprintf("%s / %s (%.1f%%)", mem, humanBytes(s.MemoryLimitBytes), 100*s.MemoryUsageBytes/s.MemoryLimitBytes)
	}
	rows := [][]string{
		{"Space:", fmt.Sprintf("%s (on %s)", o.Name, c.Name)},
		{"CPU:", fmt.Sprintf("%.1f%%", s.CPUPercent)},
		{"Memory:", mem},
		{"Processes:", fmt.Sprint(s.Pids)},
		{"Network:", fmt.Sprintf("%s in, %s out", humanBytes(s.NetworkRxBytes), humanBytes(s.NetworkTxBytes))},
		{"Disk I/O:", fmt.Sprintf("%s read, %s written", humanBytes(s.BlockReadBytes), humanBytes(s.BlockWriteBytes))},
	}
	return (&printer{out: o.IO.Out}).table(rows)
}
