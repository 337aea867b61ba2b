package api_test

import (
	"errors"
	"testing"

	"github.com/adam91holt/clawdspace/api"
	"github.com/adam91holt/clawdspace/spaces"
)

func TestOpenForwardDomain(t *testing.T) {
	tests := []struct {
		name    string
		in      api.OpenForward
		want    spaces.ForwardRequest
		wantErr string
	}{
		{name: "port only", in: api.OpenForward{Port: 3000}, want: spaces.ForwardRequest{Port: 3000}},
		{name: "all fields", in: api.OpenForward{Port: 1, NodePort: 65535, HTTPS: true}, want: spaces.ForwardRequest{Port: 1, NodePort: 65535, HTTPS: true}},
		{name: "port 0", in: api.OpenForward{}, wantErr: "port must be between 1 and 65535"},
		{name: "port 70000", in: api.OpenForward{Port: 70000}, wantErr: "port must be between 1 and 65535"},
		{name: "negative node port", in: api.OpenForward{Port: 80, NodePort: -1}, wantErr: "nodePort must be between 1 and 65535 (or left out)"},
		{name: "node port 65536", in: api.OpenForward{Port: 80, NodePort: 65536}, wantErr: "nodePort must be between 1 and 65535 (or left out)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Domain()
			if tt.wantErr != "" {
				msg, _ := api.ErrorMessage(err)
				if !errors.Is(err, spaces.ErrInvalid) || msg != tt.wantErr {
					t.Fatalf("error = %v (%q), want %q", err, msg, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Domain() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"3000", 3000, true}, {"1", 1, true}, {"65535", 65535, true},
		{"0", 0, false}, {"65536", 0, false}, {"-1", 0, false}, {"abc", 0, false}, {"", 0, false}, {"+80", 0, false}, {"80 ", 0, false},
	} {
		got, err := api.ParsePort(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePort(%q) = %d, %v", tt.in, got, err)
		}
	}
}
