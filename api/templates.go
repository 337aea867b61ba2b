package api

import "github.com/adam91holt/clawdspace/spaces"

// TemplateSummary is one template of GET /api/templates.
type TemplateSummary struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// TemplateList is GET /api/templates, sorted by name.
type TemplateList struct {
	Templates []TemplateSummary `json:"templates"`
}

// TemplateYAML is GET /api/templates/NAME: the template as its YAML file.
type TemplateYAML struct {
	Name string `json:"name"`
	YAML string `json:"yaml"`
}

// PutTemplate is the body of PUT /api/templates.
type PutTemplate struct {
	YAML *string `json:"yaml"`
}

// TemplateAnswer is the answer of PUT /api/templates: the parsed template.
type TemplateAnswer struct {
	Template Template `json:"template"`
}

// Template is a parsed template. Its keys are those of the YAML file
// (docs/API.md, Templates).
type Template struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Managed     bool              `json:"managed,omitempty"`
	Resources   TemplateResources `json:"resources"`
	Security    TemplateSecurity  `json:"security"`
	Network     TemplateNetwork   `json:"network"`
	Workspace   TemplateWorkspace `json:"workspace"`
}

type TemplateResources struct {
	Memory string   `json:"memory,omitempty"`
	CPUs   *float64 `json:"cpus,omitempty"`
	GPU    bool     `json:"gpu,omitempty"`
	Image  string   `json:"image,omitempty"`
}

type TemplateSecurity struct {
	WritableRootfs *bool `json:"writableRootfs,omitempty"`
}

type TemplateNetwork struct {
	Mode       string   `json:"mode,omitempty"`
	BlockCIDRs []string `json:"blockCidrs,omitempty"`
	HostPorts  []int    `json:"hostPorts,omitempty"`
}

type TemplateWorkspace struct {
	DefaultRepoDest string `json:"defaultRepoDest,omitempty"`
	MaxSize         string `json:"maxSize,omitempty"`
}

// TemplateFrom is t as the contract shows it.
func TemplateFrom(t spaces.Template) Template {
	return Template{
		Name: t.Name, Description: t.Description, Managed: t.Managed,
		Resources: TemplateResources(t.Resources),
		Security:  TemplateSecurity(t.Security),
		Network:   TemplateNetwork(t.Network),
		Workspace: TemplateWorkspace(t.Workspace),
	}
}
