// Package views renders the dashboard's pages with templ. Each screen has
// one .templ file and takes a plain view model; views do no I/O, so tests
// render them directly and query the HTML by data-testid.
package views

import "time"

// Nav names the top-level sections of the dashboard.
const (
	NavOverview  = "overview"
	NavCreate    = "create"
	NavFleet     = "fleet"
	NavTemplates = "templates"
	NavAudit     = "audit"
)

// Chrome is what the layout needs around every page.
type Chrome struct {
	Title   string
	Nav     string
	Node    string
	Version string
	// User is who is signed in (a tailnet login, "API key", "local").
	User string
	// Access describes what the user may do ("full access", "viewer on dev-*").
	Access string
	// SignOut shows the sign-out button (the key sits in a cookie).
	SignOut bool
	// Notice is a one-line confirmation of the last action.
	Notice string
	// Scripts are extra scripts under /static/ the page loads.
	Scripts []string
	// Styles are extra style sheets under /static/.
	Styles []string
	// CanCreate and CanAudit show the sections the user may use (a link
	// to a refusal helps nobody).
	CanCreate bool
	CanAudit  bool
}

// NodeStats are the machine's figures on the overview.
type NodeStats struct {
	Load      [3]float64
	CPUs      int
	MemUsed   uint64
	MemTotal  uint64
	HasDisk   bool
	DiskUsed  uint64
	DiskTotal uint64
	Running   int
	Paused    int
	Stopped   int
}

// SpaceRow is one space as the tables and the space page show it.
type SpaceRow struct {
	Name        string
	ID          string
	Status      string
	Image       string
	Memory      int64
	CPUs        float64
	GPU         bool
	Template    string
	NetworkMode string
	Volume      string
	// Agent is how the node reaches the space (spaces.Space.Agent).
	Agent        string
	Created      time.Time
	Started      time.Time
	LastActivity time.Time

	CanExec     bool
	CanTerminal bool
	CanFiles    bool
	CanDestroy  bool
}

// OverviewLive is the part of the overview that refreshes itself.
type OverviewLive struct {
	Stats     NodeStats
	Spaces    []SpaceRow
	Now       time.Time
	CanCreate bool
	// Error says why the spaces could not be listed.
	Error string
}

// Overview is the home page.
type Overview struct {
	Chrome Chrome
	Live   OverviewLive
}

// Option is one choice of a select.
type Option struct {
	Value string
	Label string
}

// CreateValues are the fields of the create form.
type CreateValues struct {
	Node        string
	Name        string
	Template    string
	Memory      string
	CPUs        string
	GPU         bool
	Image       string
	RepoURL     string
	RepoBranch  string
	RepoDest    string
	EnvFileText string
	EnvFilePath string
}

// Create is the create-space form, with the problems of the last try.
type Create struct {
	Chrome    Chrome
	Templates []Option
	Values    CreateValues
	// Errors maps a field name (as in CreateValues, lower case) to its
	// problem.
	Errors map[string]string
	// FormError is a problem no single field owns.
	FormError string
	HasGPU    bool
	// Nodes are where the space can go (empty: this node alone); the
	// value "" is this node, "auto" the node that fits best.
	Nodes []Option
}

// Crumb is one folder of a path, for the file browser's breadcrumbs;
// Path is absolute.
type Crumb struct {
	Name string
	Path string
}

// FileEntry is one row of the file browser; Path is absolute.
type FileEntry struct {
	Name  string
	Path  string
	Type  string // file, dir, symlink, other
	Size  int64
	MTime time.Time
}

// Files is the file browser of a space. Paths are absolute
// (/workspace/...): a top-level folder named workspace makes the short
// form ambiguous, so it is only shown, never sent back.
type Files struct {
	Path    string
	Parent  string // "" at the top
	Crumbs  []Crumb
	Entries []FileEntry
	// Paused says the space is paused, so nothing was listed (listing
	// would wake it).
	Paused bool
	Error  string
}

// Event is one audit row.
type Event struct {
	ID    int64
	Time  time.Time
	Space string
	Type  string
	Actor string
	Meta  string
}

// SpacePage is one space: status, observability, files, terminal, audit.
type SpacePage struct {
	Chrome      Chrome
	Space       SpaceRow
	Checkpoints Checkpoints
	Files       Files
	Events      []Event
	Now         time.Time
	// Terminal opens the terminal at once (the overview's exec action).
	Terminal bool
	Ports    Ports
}

// Ports is the ports panel of a space: what it listens on and what is
// forwarded on the tailnet.
type Ports struct {
	Space string
	// Detected is false when the space's sockets could not be read (it
	// is paused, or Error says why).
	Detected  bool
	Listening []PortRow
	// Forwards lists the forwards whose port is not listening now.
	Forwards []ForwardRow
	// Served is true when the node serves forwards (it is on a tailnet).
	Served bool
	// CanForward shows the buttons that open and close forwards.
	CanForward bool
	Error      string
}

// PortRow is a port the space listens on, and its forward when it has one.
type PortRow struct {
	Port     uint16
	Address  string
	Loopback bool
	Forward  *ForwardRow
}

// ForwardRow is a forwarded port.
type ForwardRow struct {
	Port     uint16
	NodePort uint16
	HTTPS    bool
	URL      string
	State    string
	Error    string
}

// Process is one row of a space's process table.
type Process struct {
	PID     int
	CPU     float64
	Mem     float64
	Etime   string
	Command string
}

// Observe is the observability panel of a space, refreshed in place.
type Observe struct {
	Space          string
	Status         string
	CPUPercent     float64
	MemUsed        uint64
	MemLimit       uint64
	PIDs           uint64
	HasDisk        bool
	DiskUsed       int64
	DiskTotal      int64
	DiskPercent    float64
	HasSize        bool
	WorkspaceBytes int64
	Top            []Process
	History        string
	HasHistory     bool
	Now            time.Time
	Error          string
}

// FilePage shows one file, editable when it is small UTF-8 text. Path
// and Dir are absolute (/workspace/...), as forms and links carry them.
type FilePage struct {
	Chrome   Chrome
	Space    string
	Path     string
	Dir      string
	Size     int64
	Text     string
	Editable bool
	// Why says why the file cannot be edited here.
	Why   string
	Error string
}

// Confirm asks before destroying a space.
type Confirm struct {
	Chrome Chrome
	Space  string
	Status string
}

// TemplateRow is one template in the list.
type TemplateRow struct {
	Name        string
	Description string
	Managed     bool
}

// TemplatesPage lists templates.
type TemplatesPage struct {
	Chrome    Chrome
	Templates []TemplateRow
	CanEdit   bool
}

// TemplatePage views or edits one template's YAML.
type TemplatePage struct {
	Chrome  Chrome
	Name    string // "" for a new template
	YAML    string
	Error   string
	CanEdit bool
	Managed bool
}

// AuditPage is the audit log, newest first, filtered and paged.
type AuditPage struct {
	Chrome Chrome
	Space  string
	Type   string
	Actor  string
	Types  []string
	Events []Event
	// PrevURL leads back to the newest page, NextURL to older events;
	// "" at the ends.
	PrevURL string
	NextURL string
	Now     time.Time
	Error   string
	// Filtered says a filter is set (an empty page then says nothing
	// matched, not that nothing happened).
	Filtered bool
}

// NodeRow is one node of the fleet.
type NodeRow struct {
	Name      string
	URL       string
	Online    bool
	LatencyMs int64
	Self      bool
	GPU       bool
	Arch      string
	CPUs      int
	Memory    uint64
	MemFree   uint64
	LastSeen  time.Time
	Version   string
	// Problem says why the node is offline.
	Problem string
}

// FleetPage shows the nodes and, filled in by the browser, the spaces of
// every node.
type FleetPage struct {
	Chrome    Chrome
	Nodes     []NodeRow
	UpdatedAt time.Time
	Now       time.Time
	// CanExec and CanDestroy offer Pause/Start and Destroy: whether the
	// user may on some space here. Each node decides for its own spaces.
	CanExec    bool
	CanDestroy bool
}

// SignIn is the page for a browser without a valid key.
type SignIn struct {
	Chrome Chrome
	// Problem is "missing" or "wrong".
	Problem string
}

// ErrorPage is a page for a refused or failed request.
type ErrorPage struct {
	Chrome  Chrome
	Status  int
	Heading string
	Message string
}

// Created says a space was made on another node, with a link to its page
// there: the browser may not follow a form's redirect to another origin.
type Created struct {
	Chrome Chrome
	Space  string
	Node   string
	URL    string
}

// Checkpoints is a space's checkpoints panel.
type Checkpoints struct {
	Space      string
	List       []CheckpointRow
	Limit      int
	TotalBytes int64
	// CanCheckpoint shows take, restore and delete; CanFork the fork form.
	CanCheckpoint bool
	CanFork       bool
	Error         string
}

// CheckpointRow is one checkpoint.
type CheckpointRow struct {
	Name    string
	Created time.Time
	Size    int64
	Image   string
}
