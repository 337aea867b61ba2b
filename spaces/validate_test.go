package spaces

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "dev", true},
		{"mixed", "My_space-2", true},
		{"digits first", "1abc", true},
		{"empty", "", false},
		{"space", "a b", false},
		{"dot dot", "..", false},
		{"slash", "a/b", false},
		{"leading dash", "-x", false},
		{"leading underscore", "_x", false},
		{"unicode", "café", false},
		{"too long", strings.Repeat("a", 64), false},
		{"max length", strings.Repeat("a", 63), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2g", 2 << 30, true},
		{"2G", 2 << 30, true},
		{"512m", 512 << 20, true},
		{"512", 512 << 20, true},
		{"8192k", 8 << 20, true},
		{"6m", 6 << 20, true},
		{"5m", 0, false},
		{"0", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"1t", 0, false},
		{"2 g", 0, false},
		{"1.5g", 0, false},
		{"99999999999999999999g", 0, false},
		{"9999999999g", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMemory(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseMemory(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestValidateCPUs(t *testing.T) {
	tests := []struct {
		name string
		cpus float64
		host int
		ok   bool
	}{
		{"one", 1, 2, true},
		{"half", 0.5, 2, true},
		{"all", 2, 2, true},
		{"zero", 0, 2, false},
		{"below the engine's minimum", 0.001, 2, false},
		{"the engine's minimum", 0.01, 2, true},
		{"negative", -1, 2, false},
		{"more than host", 3, 2, false},
		{"over contract", 65, 128, false},
		{"no host bound", 64, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateCPUs(tt.cpus, tt.host); (err == nil) != tt.ok {
				t.Fatalf("ValidateCPUs(%v, %d) = %v, want ok=%v", tt.cpus, tt.host, err, tt.ok)
			}
		})
	}
}

func TestValidateEnv(t *testing.T) {
	if err := ValidateEnv(map[string]string{"A": "1", "_B2": "x=y"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{{"": "x"}, {"1A": "x"}, {"A-B": "x"}, {"A=B": "x"}, {"A": "x\x00y"}} {
		if err := ValidateEnv(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateEnv(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestValidateImage(t *testing.T) {
	tests := []struct {
		image string
		ok    bool
	}{
		{"clawdspace:latest", true},
		{"clawdspace-test:busybox-v3", true},
		{"debian", true},
		{"library/debian:bookworm-slim", true},
		{"registry.example:5000/team/my_image:v1.2", true},
		{"ghcr.io/owner/image@sha256:" + strings.Repeat("a", 64), true},
		{"--privileged", false},
		{"-v", false},
		{"alpine --privileged", false},
		{"alpine;id", false},
		{"$(id)", false},
		{"alpine|sh", false},
		{"alpine\nx", false},
		{"Upper/Case", false},
		{"", false},
		{strings.Repeat("a", 600), false},
	}
	for _, tt := range tests {
		err := ValidateImage(tt.image)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateImage(%q) = %v, want ok %v", tt.image, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateImage(%q) = %v, want ErrInvalid", tt.image, err)
		}
	}
}
