package engine

import (
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

// TestHideAgent: the agent is hidden by the PID that connected, so a
// process of the space that names itself as the agent stays listed.
func TestHideAgent(t *testing.T) {
	procs := []spaces.Process{
		{PID: 10, Command: "/.clawdspace/bin/clawdspace-agent /.clawdspace/run/agent.sock"},
		{PID: 11, Command: "/.clawdspace/bin/clawdspace-agent disguised"},
		{PID: 12, Command: "sleep 60"},
	}
	got := hideAgent(append([]spaces.Process(nil), procs...), 10)
	if len(got) != 2 || got[0].PID != 11 || got[1].PID != 12 {
		t.Fatalf("hideAgent with the agent's PID: %+v", got)
	}
	if got := hideAgent(append([]spaces.Process(nil), procs...), 0); len(got) != 3 {
		t.Fatalf("hideAgent without a connected agent hid %d processes", 3-len(got))
	}
}
