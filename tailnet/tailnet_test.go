package tailnet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"tailscale.com/ipn/store/mem"

	"github.com/adam91holt/clawdspace/nodetest"
	"github.com/adam91holt/clawdspace/tailnet"
)

func TestStartErrorsAreClear(t *testing.T) {
	ctl := nodetest.StartControl(t)
	tests := []struct {
		name string
		cfg  tailnet.Config
		want string
	}{
		{
			name: "refused auth key",
			cfg: tailnet.Config{Hostname: "bad-key", AuthKey: "tskey-wrong", ControlURL: ctl.URL,
				Ephemeral: true, Store: new(mem.Store)},
			want: "auth key was refused",
		},
		{
			name: "unreachable control server",
			cfg: tailnet.Config{Hostname: "no-control", AuthKey: ctl.AuthKey, ControlURL: "http://127.0.0.1:1",
				Ephemeral: true, Store: new(mem.Store), StartTimeout: 3 * time.Second},
			want: "not up after 3s",
		},
		{
			name: "no key and no saved login",
			cfg:  tailnet.Config{Hostname: "no-login", ControlURL: ctl.URL},
			want: "no auth key and no saved tailnet login",
		},
		{
			name: "no hostname",
			cfg:  tailnet.Config{AuthKey: ctl.AuthKey, ControlURL: ctl.URL},
			want: "hostname is required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			n, err := tailnet.Start(ctx, tt.cfg)
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to say %q", err, tt.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("failing took %s: the wait must be bounded", d)
			}
		})
	}
}

func TestJoinAndWhoIs(t *testing.T) {
	ctl := nodetest.StartControl(t)
	a, b := ctl.Join(t, "dev-a"), ctl.Join(t, "dev-b")
	nodetest.WaitForPeers(t, a, b)
	who, err := a.WhoIs(t.Context(), b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(who.Node.Name, "dev-b.") || who.UserProfile.LoginName == "" {
		t.Fatalf("WhoIs(b) = node %q, login %q", who.Node.Name, who.UserProfile.LoginName)
	}
	if a.Addr() == "" || a.DNSName() == "" {
		t.Fatalf("addr %q, dns name %q", a.Addr(), a.DNSName())
	}
}
