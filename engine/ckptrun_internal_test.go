package engine

import (
	"os"
	"strconv"
	"testing"
)

// TestLiveElsewhere: a start-up sweep leaves alone a checkpoint whose
// volume names a live run of another node, and only that.
func TestLiveElsewhere(t *testing.T) {
	self := RunID()
	if liveElsewhere(self, self) {
		t.Error("this run's own checkpoint counted as another node's")
	}
	if liveElsewhere("", self) {
		t.Error("a volume without a run (made before the label) counted as live")
	}
	if !liveElsewhere(self, "1.1") {
		t.Error("a live run (this process) did not count as live for another node")
	}
	// A PID that exists with another start time is a run that is gone.
	if liveElsewhere(strconv.Itoa(os.Getpid())+".1", self) {
		t.Error("a run whose process start time differs counted as live")
	}
}
