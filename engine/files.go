package engine

import (
	"context"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/adam91holt/clawdspace/spaces"
)

// isNoSuchContainer tells a missing container from other not-found errors.
func isNoSuchContainer(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such container")
}

func unixType(mode uint32) spaces.FileType {
	switch mode & 0o170000 {
	case 0o100000:
		return spaces.TypeFile
	case 0o040000:
		return spaces.TypeDir
	case 0o120000:
		return spaces.TypeSymlink
	}
	return spaces.TypeOther
}

// Top lists a space's processes through the engine (ps runs on the host).
func (e *Engine) Top(ctx context.Context, name string) ([]spaces.Process, error) {
	var (
		res client.ContainerTopResult
		cid string
	)
	tctx, end := e.short(ctx)
	err := e.onSpace(tctx, name, func(id string) (err error) {
		cid = id
		res, err = e.c.ContainerTop(tctx, id, client.ContainerTopOptions{Arguments: []string{"-o", "pid,pcpu,pmem,etime,args"}})
		return err
	})
	end(&err)
	if err != nil {
		return nil, mapErr(err, "listing processes")
	}
	procs := hideAgent(parseTop(res.Titles, res.Processes), e.agentPID(ctx, cid))
	// The engine reports host PIDs; show the ones the space itself sees
	// where the node can tell (it runs on the engine's host).
	for i, p := range procs {
		if inContainer("/proc", p.PID, cid) {
			if ns := namespacePID("/proc", p.PID); ns > 0 {
				procs[i].PID = ns
			}
		}
	}
	return procs, nil
}

func parseTop(titles []string, rows [][]string) []spaces.Process {
	col := map[string]int{}
	for i, t := range titles {
		col[strings.ToUpper(t)] = i
	}
	get := func(row []string, names ...string) string {
		for _, n := range names {
			if i, ok := col[n]; ok && i < len(row) {
				return row[i]
			}
		}
		return ""
	}
	out := make([]spaces.Process, 0, len(rows))
	for _, r := range rows {
		pid, _ := strconv.Atoi(get(r, "PID"))
		cpu, _ := strconv.ParseFloat(get(r, "%CPU"), 64)
		mem, _ := strconv.ParseFloat(get(r, "%MEM"), 64)
		out = append(out, spaces.Process{PID: pid, CPU: cpu, Mem: mem, Etime: get(r, "ELAPSED", "ETIME"), Command: get(r, "COMMAND", "CMD")})
	}
	return out
}

// hideAgent drops the in-space agent from a process list: it is the
// node's, not the space's. It is told by the PID the kernel gave for the
// connection (host PIDs, as the engine lists them), not by its command
// line, which any process in the space can take to hide itself.
func hideAgent(procs []spaces.Process, pid int) []spaces.Process {
	if pid <= 0 {
		return procs
	}
	out := procs[:0]
	for _, p := range procs {
		if p.PID != pid {
			out = append(out, p)
		}
	}
	return out
}
