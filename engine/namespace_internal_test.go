package engine

import (
	"strings"
	"testing"

	"github.com/adam91holt/clawdspace/spaces"
)

func TestNamespaceNames(t *testing.T) {
	tests := []struct {
		name, ns, space   string
		wantCont, wantVol string
	}{
		{name: "default keeps the contract", ns: "", space: "box", wantCont: "clawdspace-box", wantVol: "clawdspace-vol-box"},
		{name: "namespaced", ns: "t1", space: "box", wantCont: "clawdspace-t1.box", wantVol: "clawdspace-vol-t1.box"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Engine{names: newNames(tt.ns)}
			if got := e.ContainerName(tt.space); got != tt.wantCont {
				t.Errorf("ContainerName = %q, want %q", got, tt.wantCont)
			}
			if got := e.VolumeName(tt.space); got != tt.wantVol {
				t.Errorf("VolumeName = %q, want %q", got, tt.wantVol)
			}
			cfg, host := e.ContainerConfig(spaces.ContainerSpec{Name: tt.space})
			if got := cfg.Labels[spaces.LabelNamespace]; got != tt.ns {
				t.Errorf("container namespace label = %q, want %q", got, tt.ns)
			}
			// Always set, empty in the default namespace: an image's label
			// must not fill it (see setAllLabels).
			if _, ok := cfg.Labels[spaces.LabelNamespace]; !ok {
				t.Errorf("container has no namespace label")
			}
			m := host.Mounts[0]
			if m.Source != tt.wantVol || cfg.Labels[spaces.LabelVolume] != tt.wantVol || m.VolumeOptions.Labels[spaces.LabelNamespace] != tt.ns {
				t.Errorf("volume %q, label %q, volume namespace %q", m.Source, cfg.Labels[spaces.LabelVolume], m.VolumeOptions.Labels[spaces.LabelNamespace])
			}
		})
	}
}

// TestNamespaceNoCollision: no valid space name of one namespace maps to
// the container or volume name of another's, because neither space names
// nor namespaces hold the separator.
func TestNamespaceNoCollision(t *testing.T) {
	if spaces.ValidateName("t1"+nsSep+"box") == nil || ValidateNamespace("t1"+nsSep+"x") == nil {
		t.Fatalf("space names and namespaces must not allow the separator %q", nsSep)
	}
	engines := []*Engine{{names: newNames("")}, {names: newNames("t1")}, {names: newNames("t1-box")}, {names: newNames("vol")}}
	candidates := []string{"box", "t1-box", "t1box", "vol-box", "box.x", "t1.box", "x"}
	seen := map[string]string{}
	for _, e := range engines {
		for _, c := range candidates {
			if spaces.ValidateName(c) != nil {
				continue
			}
			who := e.names.ns + "/" + c
			for _, n := range []string{"c:" + e.ContainerName(c), "v:" + e.VolumeName(c)} {
				if prev, ok := seen[n]; ok {
					t.Errorf("%s and %s both map to %s", prev, who, n)
				}
				seen[n] = who
			}
		}
	}
}

func TestOwns(t *testing.T) {
	space := map[string]string{spaces.LabelKind: spaces.LabelKindSpace}
	t1 := map[string]string{spaces.LabelKind: spaces.LabelKindSpace, spaces.LabelNamespace: "t1"}
	foreign := map[string]string{"name": "clawdspace-x"}
	tests := []struct {
		name   string
		ns     string
		labels map[string]string
		want   bool
	}{
		{name: "default owns an unlabelled space", ns: "", labels: space, want: true},
		{name: "default skips a namespaced space", ns: "", labels: t1, want: false},
		{name: "namespace owns its own", ns: "t1", labels: t1, want: true},
		{name: "namespace skips another", ns: "t2", labels: t1, want: false},
		{name: "namespace skips the default's", ns: "t1", labels: space, want: false},
		{name: "not a space", ns: "", labels: foreign, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Engine{names: newNames(tt.ns)}).owns(tt.labels); got != tt.want {
				t.Errorf("owns = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateNamespace(t *testing.T) {
	tests := []struct {
		ns      string
		wantErr bool
	}{
		{"", false}, {"a", false}, {"t1", false}, {"node-2", false}, {strings.Repeat("a", 20), false},
		{strings.Repeat("a", 21), true}, {"T1", true}, {"1a", true}, {"-a", true}, {"a_b", true},
		{"a.b", true}, {"a b", true}, {"é", true},
	}
	for _, tt := range tests {
		if err := ValidateNamespace(tt.ns); (err != nil) != tt.wantErr {
			t.Errorf("ValidateNamespace(%q) = %v, want error %v", tt.ns, err, tt.wantErr)
		}
	}
}
