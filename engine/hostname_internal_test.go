package engine

import "testing"

func TestReplaceWord(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bridge", "127.0.0.1\tlocalhost\n172.17.0.5\tclawdspace-pool\n", "127.0.0.1\tlocalhost\n172.17.0.5\tmy-space\n"},
		{"aliases", "10.0.0.2 clawdspace-pool clawdspace-pool.local x\n", "10.0.0.2 my-space clawdspace-pool.local x\n"},
		{"none", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"},
		{"no final newline", "1.2.3.4 clawdspace-pool", "1.2.3.4 my-space"},
	}
	for _, tt := range tests {
		if got := string(replaceWord([]byte(tt.in), poolHostname, "my-space")); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
