package spaces

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring of the message; empty means valid
	}{
		{"minimal", "name: Mine\n", ""},
		{"full", `name: full
description: everything
managed: false
resources: {memory: 512m, cpus: 1.5, gpu: false, image: "alpine:3"}
security: {writableRootfs: false}
network: {mode: none, blockCidrs: ["10.0.0.0/8"]}
workspace: {defaultRepoDest: src/app}
`, ""},
		{"empty", "", "yaml is required"},
		{"unknown key", "name: x\ncolour: red\n", "colour"},
		{"unknown nested key", "name: x\nresources: {ram: 1g}\n", "ram"},
		{"bad name", "name: -x\n", "template name"},
		{"missing name", "description: d\n", "template name"},
		{"long name", "name: " + strings.Repeat("a", 65) + "\n", "at most 64"},
		{"bad memory", "name: x\nresources: {memory: 2x}\n", "memory"},
		{"cpus zero", "name: x\nresources: {cpus: -1}\n", "cpus"},
		{"cpus too many", "name: x\nresources: {cpus: 65}\n", "cpus"},
		{"bad mode", "name: x\nnetwork: {mode: wifi}\n", "network.mode"},
		{"bad cidr", "name: x\nnetwork: {blockCidrs: [nope]}\n", "nope"},
		{"absolute dest", "name: x\nworkspace: {defaultRepoDest: /etc}\n", "relative"},
		{"dotdot dest", "name: x\nworkspace: {defaultRepoDest: a/../../b}\n", ".."},
		{"long description", "name: x\ndescription: " + strings.Repeat("d", 201) + "\n", "200"},
		{"not yaml", "name: [\n", "invalid template yaml"},
		{"two documents", "name: a\n---\nname: b\n", "single document"},
		{"wrong type", "name: x\nresources: {cpus: many}\n", "invalid template yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := ParseTemplate(tt.yaml)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseTemplate() = %v", err)
				}
				if tpl.Name != strings.ToLower(tpl.Name) {
					t.Errorf("name %q not lower-cased", tpl.Name)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseTemplate() = %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTemplateRoundTrip(t *testing.T) {
	for _, b := range BuiltinTemplates("gpu:img") {
		got, err := ParseTemplate(b.YAML())
		if err != nil {
			t.Fatalf("%s: %v\n%s", b.Name, err, b.YAML())
		}
		if got.YAML() != b.YAML() {
			t.Errorf("%s: round trip changed\n%s\nto\n%s", b.Name, b.YAML(), got.YAML())
		}
	}
}

func TestTemplatePosture(t *testing.T) {
	f := false
	tests := []struct {
		name     string
		tpl      Template
		mode     string
		readOnly bool
	}{
		{"defaults", Template{}, NetworkInternet, false},
		{"offline read-only", Template{Network: TemplateNetwork{Mode: NetworkNone}, Security: TemplateSecurity{WritableRootfs: &f}}, NetworkNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tpl.NetworkMode(); got != tt.mode {
				t.Errorf("NetworkMode() = %q, want %q", got, tt.mode)
			}
			if got := tt.tpl.ReadOnlyRootfs(); got != tt.readOnly {
				t.Errorf("ReadOnlyRootfs() = %v, want %v", got, tt.readOnly)
			}
		})
	}
}
