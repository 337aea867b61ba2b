package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"golang.org/x/net/http2"

	"github.com/adam91holt/clawdspace/agent"
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
//
// A connected agent reads the table in the space itself (agentTop); the
// engine's ps on the host otherwise.
func (e *Engine) Top(ctx context.Context, name string) ([]spaces.Process, error) {
	var (
		res   client.ContainerTopResult
		cid   string
		procs []spaces.Process
	)
	tctx, end := e.short(ctx)
	err := e.onSpace(tctx, name, func(id string) (err error) {
		cid = id
		if s, cc := e.agentFor(tctx, id); cc != nil {
			if procs, err = e.agentTop(tctx, s, cc, id); err == nil {
				return nil
			}
		}
		procs = nil
		res, err = e.c.ContainerTop(tctx, id, client.ContainerTopOptions{Arguments: []string{"-o", "pid,pcpu,pmem,etime,args"}})
		return err
	})
	if procs != nil && err == nil {
		end(&err)
		// The agent's table has the PIDs the space sees: its own is told by
		// the PID the kernel gave for its connection, in the space's terms.
		if pid := e.agentPID(ctx, cid); pid > 0 {
			return hideAgent(procs, namespacePID("/proc", pid)), nil
		}
		return procs, nil
	}
	end(&err)
	if err != nil {
		return nil, mapErr(err, "listing processes")
	}
	procs = hideAgent(parseTop(res.Titles, res.Processes), e.agentPID(ctx, cid))
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

// agentTop lists a space's processes through its agent, within the call
// timeout, bounded in count, size and field lengths; an error sends the
// caller to the engine's ps.
func (e *Engine) agentTop(ctx context.Context, s *agentSlot, cc *http2.ClientConn, id string) ([]spaces.Process, error) {
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	var rows []agent.Process
	if err := agentCall(ctx, cc, "GET", "/top", agent.MaxTopBytes, &rows); err != nil {
		if f, _ := frozen(e.procsFile(ctx, id)); !f && ctx.Err() == nil {
			s.failed(e, "the agent's process list: "+printable(err.Error(), 80))
		}
		return nil, err
	}
	if len(rows) > agent.MaxProcesses {
		s.failed(e, "the agent listed too many processes")
		return nil, errors.New("too many processes")
	}
	out := make([]spaces.Process, 0, len(rows))
	for _, r := range rows {
		out = append(out, spaces.Process{PID: r.PID, CPU: r.CPU, Mem: r.Mem,
			Etime: printable(r.Etime, 32), Command: boundUTF8(r.Command, agent.MaxCommandLen)})
	}
	return out, nil
}

// boundUTF8 cuts s to at most n bytes of valid UTF-8.
func boundUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
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
