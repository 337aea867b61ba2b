package agent

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		kind byte
		p    []byte
	}{{FrameStdout, []byte("out")}, {FrameStderr, nil}, {FrameStdout, bytes.Repeat([]byte("x"), MaxFrame)}, {FrameExit, ExitFrame(-3)}} {
		if err := WriteFrame(&b, f.kind, f.p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, MaxFrame)
	want := []struct {
		kind byte
		n    int
	}{{FrameStdout, 3}, {FrameStderr, 0}, {FrameStdout, MaxFrame}, {FrameExit, 4}}
	for _, w := range want {
		kind, p, err := ReadFrame(&b, buf)
		if err != nil || kind != w.kind || len(p) != w.n {
			t.Fatalf("got %q %d %v, want %q %d", kind, len(p), err, w.kind, w.n)
		}
		if kind == FrameExit && ExitCode(p) != -3 {
			t.Fatalf("exit code %d", ExitCode(p))
		}
	}
	if _, _, err := ReadFrame(&b, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v", err)
	}
}

// TestReadFrameRefuses: what a hostile agent may send never makes the
// reader allocate or accept a frame outside the format.
func TestReadFrameRefuses(t *testing.T) {
	buf := make([]byte, MaxFrame)
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"too long", "o\xff\xff\xff"},
		{"one byte over", "o\x00\x80\x01"},
		{"unknown kind", "z\x00\x00\x01a"},
		{"short exit", "x\x00\x00\x02ab"},
		{"truncated", "o\x00\x00\x05ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ReadFrame(strings.NewReader(tc.in), buf); !errors.Is(err, ErrBadFrame) {
				t.Fatalf("err = %v, want ErrBadFrame", err)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HOME=/home/sandbox", "A=1"}, []string{"A=2", "B=3", "PATH=/x"})
	want := "PATH=/x HOME=/home/sandbox A=2 B=3"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if p, err := lookPath("sh", []string{"PATH=" + dir + ":/bin:/usr/bin"}); err != nil || !strings.HasSuffix(p, "/sh") {
		t.Fatalf("sh: %q %v", p, err)
	}
	if _, err := lookPath("no-such-command-here", []string{"PATH=" + dir}); err == nil {
		t.Fatal("found a missing command")
	}
	if p, _ := lookPath("./x", nil); p != "./x" {
		t.Fatalf("a path is taken as it is: %q", p)
	}
}

func TestEtime(t *testing.T) {
	for sec, want := range map[float64]string{0: "00:00", 61: "01:01", 3600: "01:00:00", 90061: "1-01:01:01", -5: "00:00"} {
		if got := etime(sec); got != want {
			t.Errorf("etime(%v) = %q, want %q", sec, got, want)
		}
	}
}

func TestTopReadsThisProcess(t *testing.T) {
	procs, err := top("/proc")
	if err != nil || len(procs) == 0 || len(procs) > MaxProcesses {
		t.Fatalf("%d processes, %v", len(procs), err)
	}
}
