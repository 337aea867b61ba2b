package spaces

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Network modes of a template.
const (
	NetworkNone     = "none"
	NetworkInternet = "internet"
	NetworkLAN      = "lan"
)

// DefaultTemplate is applied when a create request names no template.
const DefaultTemplate = "default"

var templateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Template presets resources, image and network posture for new spaces. Its
// YAML form has exactly these keys; unknown keys are an error. The yaml
// tags are that file format (template files, and the YAML the API's
// template routes carry); the API's JSON form is api.Template.
type Template struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description,omitempty"`
	Managed     bool              `yaml:"managed,omitempty"`
	Resources   TemplateResources `yaml:"resources,omitempty"`
	Security    TemplateSecurity  `yaml:"security,omitempty"`
	Network     TemplateNetwork   `yaml:"network,omitempty"`
	Workspace   TemplateWorkspace `yaml:"workspace,omitempty"`
}

type TemplateResources struct {
	Memory string   `yaml:"memory,omitempty"`
	CPUs   *float64 `yaml:"cpus,omitempty"`
	GPU    bool     `yaml:"gpu,omitempty"`
	Image  string   `yaml:"image,omitempty"`
}

type TemplateSecurity struct {
	// WritableRootfs defaults to true; false makes the root filesystem read-only.
	WritableRootfs *bool `yaml:"writableRootfs,omitempty"`
}

type TemplateNetwork struct {
	Mode       string   `yaml:"mode,omitempty"`
	BlockCIDRs []string `yaml:"blockCidrs,omitempty"`
	// HostPorts opens these ports of the node's own addresses to spaces
	// whose block list otherwise blocks the whole host.
	HostPorts []int `yaml:"hostPorts,omitempty"`
}

type TemplateWorkspace struct {
	DefaultRepoDest string `yaml:"defaultRepoDest,omitempty"`
	// MaxSize limits the workspace volume (memory syntax: 10g). A node
	// that cannot enforce it refuses the create (see docs/API.md).
	MaxSize string `yaml:"maxSize,omitempty"`
}

// maxHostPorts bounds a template's hostPorts: each costs rules per host
// address in every space.
const maxHostPorts = 16

// ReadOnlyRootfs reports whether spaces from this template get a read-only root.
func (t Template) ReadOnlyRootfs() bool {
	return t.Security.WritableRootfs != nil && !*t.Security.WritableRootfs
}

// NetworkMode returns the template's network mode, internet when unset.
func (t Template) NetworkMode() string {
	if t.Network.Mode == "" {
		return NetworkInternet
	}
	return t.Network.Mode
}

// EgressBlocks is what spaces of this template may not reach: the block
// list in internet mode; lan blocks nothing and none has no network at all.
func (t Template) EgressBlocks() []string {
	if t.NetworkMode() != NetworkInternet {
		return nil
	}
	return t.Network.BlockCIDRs
}

// HostPorts returns the host ports spaces of this template may reach
// while the rest of the host is blocked; only a block list blocks the host.
func (t Template) HostPorts() []uint16 {
	if len(t.EgressBlocks()) == 0 {
		return nil
	}
	out := make([]uint16, 0, len(t.Network.HostPorts))
	for _, p := range t.Network.HostPorts {
		out = append(out, uint16(p))
	}
	return out
}

// WorkspaceMaxBytes is the workspace size limit in bytes, 0 for none.
// Normalize has checked the value.
func (t Template) WorkspaceMaxBytes() int64 {
	if t.Workspace.MaxSize == "" {
		return 0
	}
	n, _ := ParseMemory(t.Workspace.MaxSize)
	return n
}

// ParseTemplate parses and validates a template's YAML. Unknown keys, a bad
// name, bad memory or any other schema violation is an ErrInvalid error that
// says what is wrong.
func ParseTemplate(src string) (Template, error) {
	return parseTemplate(src, true)
}

func parseTemplate(src string, checkImage bool) (Template, error) {
	var t Template
	if strings.TrimSpace(src) == "" {
		return t, FieldErrorf(ErrInvalid, FieldTemplateYAML, "is required")
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return Template{}, Errorf(ErrInvalid, "invalid template yaml: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Template{}, Errorf(ErrInvalid, "invalid template yaml: expected a single document")
	}
	if err := t.normalize(checkImage); err != nil {
		return Template{}, err
	}
	return t, nil
}

// ParseStoredTemplate is ParseTemplate for a template read back from the
// store: an image that the rules of ValidateImage refuse (saved before
// they existed) is kept, so the template can still be shown and fixed; a
// create from it is refused, since create checks the image again.
func ParseStoredTemplate(src string) (Template, error) {
	return parseTemplate(src, false)
}

// Normalize validates t and puts it into canonical form (lower-case name,
// sorted-free, unchanged otherwise).
func (t *Template) Normalize() error {
	return t.normalize(true)
}

func (t *Template) normalize(checkImage bool) error {
	t.Name = strings.ToLower(strings.TrimSpace(t.Name))
	if err := ValidateTemplateName(t.Name); err != nil {
		return err
	}
	if len(t.Description) > 200 {
		return Errorf(ErrInvalid, "description must be at most 200 characters")
	}
	if t.Resources.Memory != "" {
		if _, err := ParseMemory(t.Resources.Memory); err != nil {
			return err
		}
	}
	if t.Resources.CPUs != nil {
		if err := ValidateCPUs(*t.Resources.CPUs, 0); err != nil {
			return err
		}
	}
	if checkImage && t.Resources.Image != "" {
		if err := ValidateImage(t.Resources.Image); err != nil {
			return Errorf(ErrInvalid, "resources.image: %s", err.Error())
		}
	}
	switch t.Network.Mode {
	case "", NetworkNone, NetworkInternet, NetworkLAN:
	default:
		return Errorf(ErrInvalid, "network.mode must be one of none, internet, lan (got %q)", t.Network.Mode)
	}
	for _, c := range t.Network.BlockCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return Errorf(ErrInvalid, "network.blockCidrs: %q is not a CIDR", c)
		}
	}
	if len(t.Network.HostPorts) > maxHostPorts {
		return Errorf(ErrInvalid, "network.hostPorts: at most %d ports", maxHostPorts)
	}
	for _, p := range t.Network.HostPorts {
		if p < 1 || p > 65535 {
			return Errorf(ErrInvalid, "network.hostPorts: %d is not a port (1-65535)", p)
		}
	}
	if len(t.Network.HostPorts) > 0 && t.NetworkMode() == NetworkNone {
		return Errorf(ErrInvalid, "network.hostPorts needs a network (mode is none)")
	}
	if m := t.Workspace.MaxSize; m != "" {
		if _, err := ParseMemory(m); err != nil {
			return Errorf(ErrInvalid, "workspace.maxSize: %s", err.Error())
		}
	}
	if d := t.Workspace.DefaultRepoDest; d != "" {
		if err := ValidateRepoDest(d); err != nil {
			return Errorf(ErrInvalid, "workspace.defaultRepoDest: %s", err.Error())
		}
	}
	return nil
}

// ValidateTemplateName checks a template name.
func ValidateTemplateName(name string) error {
	if len(name) > 64 {
		return Errorf(ErrInvalid, "template name must be at most 64 characters")
	}
	if !templateNameRE.MatchString(strings.ToLower(name)) {
		return Errorf(ErrInvalid, "template name %q must match ^[a-z0-9][a-z0-9._-]*$", name)
	}
	return nil
}

// ValidateRepoDest checks a clone destination relative to /workspace.
func ValidateRepoDest(d string) error {
	switch {
	case strings.HasPrefix(d, "/"):
		return FieldErrorf(ErrInvalid, FieldRepoDest, "must be relative to /workspace")
	case strings.HasPrefix(d, "-"):
		return FieldErrorf(ErrInvalid, FieldRepoDest, "must not start with '-'")
	case strings.Contains(d, ".."):
		return FieldErrorf(ErrInvalid, FieldRepoDest, "must not contain '..'")
	case strings.ContainsAny(d, "\x00\n\r"):
		return FieldErrorf(ErrInvalid, FieldRepoDest, "contains a control character")
	}
	return nil
}

// YAML renders the template in its canonical YAML form.
func (t Template) YAML() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(t); err != nil {
		// Encoding a plain struct cannot fail.
		panic(fmt.Sprintf("encoding template: %v", err))
	}
	return b.String()
}

// privateRanges: private IPv4, the tailnet (CGNAT) range, link-local, and
// their IPv6 counterparts (unique local, which holds Tailscale's, and
// link-local).
func privateRanges() []string {
	return []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
		"fc00::/7", "fe80::/10"}
}

// BuiltinTemplates returns the four templates every node starts with.
// Managed ones are rewritten at start-up; the others are created only when
// missing, so an owner's edits survive.
func BuiltinTemplates(gpuImage string) []Template {
	return []Template{
		{
			Name:        "default",
			Description: "General-purpose sandbox: 2 GB, 1 CPU, internet but no private or tailnet ranges",
			Resources:   TemplateResources{Memory: "2g", CPUs: ptr(1.0)},
			Network:     TemplateNetwork{Mode: NetworkInternet, BlockCIDRs: privateRanges()},
		},
		{
			Name:        "gpu",
			Description: "GPU sandbox: 8 GB, 4 CPUs, all GPUs of the node",
			Managed:     true,
			Resources:   TemplateResources{Memory: "8g", CPUs: ptr(4.0), GPU: true, Image: gpuImage},
			Network:     TemplateNetwork{Mode: NetworkInternet, BlockCIDRs: privateRanges()},
		},
		{
			Name:        "offline",
			Description: "No network at all",
			Resources:   TemplateResources{Memory: "2g", CPUs: ptr(1.0)},
			Network:     TemplateNetwork{Mode: NetworkNone},
		},
		{
			Name:        "lan",
			Description: "Internet and local network, nothing blocked",
			Resources:   TemplateResources{Memory: "2g", CPUs: ptr(1.0)},
			Network:     TemplateNetwork{Mode: NetworkLAN},
		},
	}
}

func ptr[T any](v T) *T { return &v }
