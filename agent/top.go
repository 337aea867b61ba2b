package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Process is one row of GET /top: the processes the agent sees, with
// their PIDs in the space, as ps reports them.
type Process struct {
	PID     int     `json:"pid"`
	CPU     float64 `json:"cpu"`
	Mem     float64 `json:"mem"`
	Etime   string  `json:"etime"`
	Command string  `json:"command"`
}

// Bounds of a process list (the node checks them again).
const (
	MaxProcesses  = 4096
	MaxCommandLen = 1024
	// MaxTopBytes bounds the answer's JSON as the node reads it.
	MaxTopBytes = 8 << 20
)

// userHZ is the unit of the times in /proc/PID/stat on Linux.
const userHZ = 100

func serveTop(w http.ResponseWriter, r *http.Request) {
	procs, err := top("/proc")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(procs)
}

// top reads the process table as ps -o pid,pcpu,pmem,etime,args would.
func top(proc string) ([]Process, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	uptime := readUptime(proc)
	memTotal := readMemTotal(proc)
	out := []Process{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || len(out) >= MaxProcesses {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", proc, pid))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) < 22 {
			continue
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		start, _ := strconv.ParseFloat(f[19], 64)
		rss, _ := strconv.ParseFloat(f[21], 64)
		elapsed := uptime - start/userHZ
		p := Process{PID: pid, Etime: etime(elapsed)}
		if elapsed > 0 {
			p.CPU = round1((utime + stime) / userHZ / elapsed * 100)
		}
		if memTotal > 0 {
			p.Mem = round1(rss * float64(os.Getpagesize()) / memTotal * 100)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", proc, pid))
		p.Command = strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		if p.Command == "" {
			p.Command = "[" + comm + "]"
		}
		if len(p.Command) > MaxCommandLen {
			p.Command = p.Command[:MaxCommandLen]
		}
		out = append(out, p)
	}
	return out, nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// etime formats seconds as ps does: [[DD-]hh:]mm:ss.
func etime(sec float64) string {
	t := max(int64(sec), 0)
	d, h, m, s := t/86400, t/3600%24, t/60%60, t%60
	switch {
	case d > 0:
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
	case h > 0:
		return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", m, s)
}

func readUptime(proc string) float64 {
	b, _ := os.ReadFile(proc + "/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[0], 64)
	return u
}

func readMemTotal(proc string) float64 {
	b, _ := os.ReadFile(proc + "/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb * 1024
			}
		}
	}
	return 0
}
